package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/internal/netcut"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// report is the outcome of one run.
type report struct {
	backend         string
	duration        time.Duration
	counts          counts
	peakRSS         int64 // KiB
	peakGoroutines  int64
	partitionsStart int
	partitionsEnd   int
	churns          int
	membersStarted  int
	cuts            int
	runErrors       string
	newErrors       string
	closes          string
	drained         time.Duration // from the producer's flush to the last acknowledged id consumed, or the drain bound
	longestStall    time.Duration // longest time the group consumed no new id while acknowledged ids waited
}

// failedRun reports whether the run broke a rule: a lost record, or a
// callback that ran twice or never.
func (r *report) failedRun() bool {
	return r.counts.lost > 0 || r.counts.extraCallbacks > 0 || r.counts.noCallback > 0
}

// events is the run's time line: growth, churn, cuts and failures, each
// printed as it happens and kept for the diagnosis of lost records.
type events struct {
	start time.Time
	log   io.Writer

	mu   sync.Mutex
	list []event
}

type event struct {
	at   time.Duration
	text string
}

func (e *events) add(format string, args ...any) {
	ev := event{at: time.Since(e.start), text: fmt.Sprintf(format, args...)}
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	fmt.Fprintf(e.log, "[+%v] %s\n", ev.at.Round(time.Millisecond), ev.text)
}

// around returns the events from before to after around at.
func (e *events) around(at, before, after time.Duration) []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event
	for _, ev := range e.list {
		if ev.at >= at-before && ev.at <= at+after {
			out = append(out, ev)
		}
	}
	return out
}

func run(ctx context.Context, c config, out, log io.Writer) (*report, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	log = &lockedWriter{w: log} // events and progress lines come from several goroutines
	lw, closeLog, err := logTo(c.logFile)
	if err != nil {
		return nil, err
	}
	defer closeLog()
	logger := slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: c.logLevel}))

	tc, sw, err := testcluster.StartCuttable()
	if err != nil {
		return nil, fmt.Errorf("starting the embedded cluster: %w", err)
	}
	defer tc.Close()
	stamp := time.Now().UnixNano()
	topic := fmt.Sprintf("soak-%s-%d", c.backend, stamp)
	groupName := fmt.Sprintf("soak-%s-%d", c.backend, stamp)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = tc.CreateTopic(cctx, topic, int32(c.partitions))
	cancel()
	if err != nil {
		return nil, err
	}

	start := time.Now()
	rep := &report{backend: c.backend, duration: c.duration, partitionsStart: c.partitions}
	ev := &events{start: start, log: log}
	led := newLedger(start)
	var partitions, cuts, churns atomic.Int64
	partitions.Store(int64(c.partitions))

	// Peak goroutines and the longest consume stall, sampled until the end.
	var peakG, longestStall atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampling sync.WaitGroup
	sampling.Go(func() {
		lastUnique, since, described := -1, time.Now(), false
		for sampleCtx.Err() == nil {
			peakG.Store(max(peakG.Load(), int64(runtimeGoroutines())))
			unique, pending := led.progress()
			if unique != lastUnique || pending == 0 {
				if described {
					ev.add("stall over: the group consumes again after %v", time.Since(since).Round(time.Second))
				}
				lastUnique, since, described = unique, time.Now(), false
			} else {
				d := time.Since(since)
				if int64(d) > longestStall.Load() {
					longestStall.Store(int64(d))
				}
				if d > stallReport && !described {
					described = true
					ev.add("stall: no new id consumed for %v while %d wait; the group: %s", d.Round(time.Second), pending, describeGroup(tc, groupName))
				}
			}
			sleep(sampleCtx, 500*time.Millisecond)
		}
	})
	defer func() { stopSampling(); sampling.Wait() }()

	g := &group{brokers: tc.Brokers(), backend: c.backend, name: groupName, topic: topic,
		ledger: led, logger: logger, events: ev}
	groupCtx, stopGroup := context.WithCancel(ctx)
	defer func() { stopGroup(); g.wait() }()
	g.start(groupCtx, c.members)

	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	p, err := producer.New(pctx, backends[c.backend](tc.Brokers()), &producer.Options{Logger: logger.With("producer", true)})
	cancel()
	if err != nil {
		return nil, err
	}
	defer p.Close()

	progress := func() {
		k := led.counts()
		rss, _ := memory()
		started, _, _, _ := g.stats()
		fmt.Fprintf(log, "[+%v] produced %d, acknowledged %d, failed %d, consumed %d, pending %d, duplicated %d; partitions %d, members started %d, churns %d, cuts %d; goroutines %d, RSS %s\n",
			time.Since(start).Round(time.Second), k.produced, k.acked, k.failed, k.unique, k.lost, k.duplicated,
			partitions.Load(), started, churns.Load(), cuts.Load(), runtimeGoroutines(), mib(rss))
	}
	progressCtx, stopProgress := context.WithCancel(ctx)
	var progressing sync.WaitGroup
	progressing.Go(func() {
		for {
			sleep(progressCtx, c.progress)
			if progressCtx.Err() != nil {
				return
			}
			progress()
		}
	})
	defer func() { stopProgress(); progressing.Wait() }()

	ev.add("%s: topic %s with %d partitions, group %s of %d members, %d records/s for %v", c.backend, topic, c.partitions, groupName, c.members, c.rate, c.duration)
	runCtx, stopRun := context.WithTimeout(ctx, c.duration)
	defer stopRun()
	var chaos sync.WaitGroup
	if c.grow > 0 {
		chaos.Go(func() { growLoop(runCtx, tc.Admin(), topic, c, &partitions, ev) })
	}
	if c.churn > 0 {
		chaos.Go(func() {
			for i := 0; ; i++ {
				sleep(runCtx, c.churn)
				if runCtx.Err() != nil {
					return
				}
				n, first := 1+i%c.members, i%c.members
				ev.add("churn %d: closing %d member(s) at once and starting them again", i+1, n)
				begin := time.Now()
				up := g.churn(runCtx, first, n)
				churns.Add(1)
				if up {
					ev.add("churn %d: replacements up after %v", i+1, time.Since(begin).Round(time.Millisecond))
				} else {
					ev.add("churn %d: replacements not all up after %v (the run ended, or 2m passed)", i+1, time.Since(begin).Round(time.Millisecond))
				}
			}
		})
	}
	if c.cutEvery > 0 {
		chaos.Go(func() { cutLoop(runCtx, sw, c, &cuts, ev) })
	}

	// Produce at c.rate until the duration has passed.
	sent, skipped := 0, 0
	var failuresShown atomic.Int64 // the first 20 failed sends are events
	tick := time.NewTicker(50 * time.Millisecond)
produce:
	for {
		select {
		case <-runCtx.Done():
			break produce
		case <-tick.C:
		}
		due := int(float64(c.rate)*time.Since(start).Seconds()) - sent - skipped
		if due > c.rate { // behind by more than a second (SendAsync blocked): do not burst
			skipped += due - c.rate
			due = c.rate
		}
		for range due {
			id := led.next()
			v := strconv.AppendInt(nil, int64(id), 10)
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Key: v, Value: v}, func(r *polykafka.Record, err error) {
				led.callback(id, r, err)
				if err != nil && failuresShown.Add(1) <= 20 {
					ev.add("send of id %d failed (%s): %v", id, polykafka.Code(err), err)
				}
			})
			sent++
		}
	}
	tick.Stop()
	chaos.Wait()
	ev.add("production stopped after %d records; flushing", sent)
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	if err := p.Flush(fctx); err != nil {
		ev.add("Flush: %v", err)
	}
	cancel()
	if err := p.Close(); err != nil {
		ev.add("producer Close: %v", err)
	}
	flushed := time.Now()
	ev.add("producer closed; waiting up to %v until every acknowledged id is consumed", c.drain)
	for {
		_, pending := led.progress()
		if pending == 0 || time.Since(flushed) > c.drain || ctx.Err() != nil {
			ev.add("drain: %d acknowledged ids not consumed after %v", pending, time.Since(flushed).Round(time.Millisecond))
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	rep.drained = time.Since(flushed)
	rep.longestStall = time.Duration(longestStall.Load())
	stopGroup()
	g.wait()
	ev.add("group closed")
	stopProgress()
	progressing.Wait()
	progress()

	rep.counts = led.counts()
	rep.partitionsEnd = int(partitions.Load())
	rep.cuts = int(cuts.Load())
	rep.churns = int(churns.Load())
	rep.membersStarted, rep.runErrors, rep.newErrors, rep.closes = g.stats()
	_, rep.peakRSS = memory()
	rep.peakGoroutines = max(peakG.Load(), int64(runtimeGoroutines()))
	writeTable(out, rep)
	if skipped > 0 {
		fmt.Fprintf(out, "\nthe producer fell behind -rate: %d records not sent\n", skipped)
	}
	if rep.counts.lost > 0 {
		diagnose(log, tc, topic, groupName, led, ev, rep.counts)
	}
	return rep, nil
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stallReport is how long the group may consume nothing while acknowledged
// ids wait before the run describes the group in an event.
const stallReport = 20 * time.Second

// describeGroup returns the group's state and members as the coordinator
// sees them, in one line.
func describeGroup(tc *testcluster.Cluster, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := tc.Admin().DescribeGroups(ctx, group)
	if err != nil {
		return "describe failed: " + err.Error()
	}
	g, ok := gs[group]
	if !ok {
		return "not described"
	}
	if g.Err != nil {
		return "describe failed: " + g.Err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state %s, %d members", g.State, len(g.Members))
	for _, m := range g.Members {
		fmt.Fprintf(&b, "; %s from %s", m.MemberID, m.ClientHost)
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				fmt.Fprintf(&b, " %v", t.Partitions)
			}
		}
	}
	return b.String()
}

// growLoop adds a partition every c.grow, up to c.maxPartitions.
func growLoop(ctx context.Context, adm *kadm.Client, topic string, c config, partitions *atomic.Int64, ev *events) {
	for {
		sleep(ctx, c.grow)
		if ctx.Err() != nil {
			return
		}
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		td, err := adm.ListTopics(actx, topic)
		n := len(td[topic].Partitions)
		if err == nil && n < c.maxPartitions {
			var resp kadm.CreatePartitionsResponses
			resp, err = adm.UpdatePartitions(actx, n+1, topic)
			if err == nil {
				err = resp.Error()
			}
			if err == nil {
				partitions.Store(int64(n + 1))
				ev.add("grow: partition %d added (%d partitions)", n, n+1)
			}
		}
		cancel()
		if err != nil {
			ev.add("grow: failed, trying again next time: %v", err)
		}
	}
}

// cutLoop cuts every connection to the cluster every c.cutEvery, for
// c.cutFor, and always restores before it returns.
func cutLoop(ctx context.Context, sw *netcut.Switch, c config, cuts *atomic.Int64, ev *events) {
	for {
		sleep(ctx, c.cutEvery-c.cutFor)
		if ctx.Err() != nil {
			return
		}
		sw.Cut()
		cuts.Add(1)
		ev.add("cut: every connection closed for %v", c.cutFor)
		sleep(ctx, c.cutFor)
		for attempt := 1; ; attempt++ {
			err := sw.Restore()
			if err == nil {
				break
			}
			ev.add("restore failed (attempt %d), trying again: %v", attempt, err)
			time.Sleep(time.Second)
		}
		ev.add("restored")
	}
}

// writeTable prints the report as a markdown table of one row, then the
// details that do not fit a column.
func writeTable(w io.Writer, r *report) {
	k := r.counts
	fmt.Fprintln(w, "| backend | duration | produced | acknowledged | failed (code) | consumed (unique) | lost | duplicated | peak RSS | peak goroutines | partitions | members started | churns | cuts |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	fmt.Fprintf(w, "| %s | %v | %d | %d | %s | %d | %d | %d | %s | %d | %d→%d | %d | %d | %d |\n",
		r.backend, r.duration, k.produced, k.acked, byCode(k.failedBy), k.unique, k.lost, k.duplicated,
		mib(r.peakRSS), r.peakGoroutines, r.partitionsStart, r.partitionsEnd, r.membersStarted, r.churns, r.cuts)
	fmt.Fprintf(w, "\n%s: callbacks missing %d, extra %d; consumed values of no id %d; member Run errors: %s; New errors: %s; closes: %s; drain %v; longest consume stall %v\n",
		r.backend, k.noCallback, k.extraCallbacks, k.foreign, r.runErrors, r.newErrors, r.closes, r.drained.Round(time.Millisecond), r.longestStall.Round(100*time.Millisecond))
}

// byCode formats counts by error code: "0", or "3 unavailable, 1 unknown".
func byCode(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d %s", m[code], code))
	}
	return strings.Join(parts, ", ")
}
