// Command newpartitions replays the production incident polykafka exists
// for, and shows that it no longer loses data.
//
// A consumer group with Initial=latest reads a 2-partition topic. A
// producer writes numbered records round-robin at a steady rate. A third of
// the way through, the topic grows to 4 partitions and the producer starts
// writing to the new ones at once. With a plain client at "latest", every
// record written to the new partitions before the group notices them is
// skipped forever. With polykafka they start at their earliest offset.
//
// The program prints each start decision as it is made, progress every
// second, and at the end, per partition: records produced, consumed and
// lost; where the group first started the partition and why, and how many
// start decisions followed (rebalances resuming from commits); and, for the
// partitions created during the run, the time from their creation to their
// first consumed record. It also says when the producer fell more than 10%
// short of the requested rate. It exits with status 1 if any record was
// lost or a flag is invalid.
//
// With no -brokers flag it starts an embedded Kafka cluster (kfake, three
// brokers in this process), so it runs on a bare machine:
//
//	go run ./examples/newpartitions
//	go run ./examples/newpartitions -duration 30s -rate 500
//	go run ./examples/newpartitions -brokers localhost:9092
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
)

const (
	before  = 2 // partitions at the start
	after   = 4 // partitions after growth
	maxRate = 1_000_000
)

// checkFlags validates the numeric flags, naming the one that is wrong.
func checkFlags(duration time.Duration, rate int, interval time.Duration) error {
	if duration <= 0 {
		return fmt.Errorf("-duration %v: must be positive", duration)
	}
	if rate < 1 || rate > maxRate {
		return fmt.Errorf("-rate %d: must be between 1 and %d records per second", rate, maxRate)
	}
	if interval <= 0 {
		return fmt.Errorf("-discovery %v: must be positive (the consumer's partition discovery cannot be turned off here)", interval)
	}
	return nil
}

func main() {
	var (
		brokers  = flag.String("brokers", "", "comma-separated bootstrap brokers; empty starts an embedded cluster")
		backend  = flag.String("backend", "franz", "polykafka backend: franz, kafkago, sarama, confluent (needs cgo)")
		duration = flag.Duration("duration", 10*time.Second, "how long the producer writes")
		rate     = flag.Int("rate", 200, fmt.Sprintf("records per second, 1 to %d", maxRate))
		interval = flag.Duration("discovery", 2*time.Second, "consumer partition discovery interval; must be positive")
		verbose  = flag.Bool("v", false, "log the consumer's decisions and the client's warnings")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *brokers, *backend, *duration, *rate, *interval, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "newpartitions:", err)
		os.Exit(1)
	}
}

// newBackend selects the polykafka backend by name: the one line an
// application changes to switch clients.
func newBackend(name string, seeds []string) (driver.Backend, error) {
	switch name {
	case "franz":
		return franz.New(polykafka.Connection{Brokers: seeds}), nil
	case "kafkago":
		return kafkago.New(polykafka.Connection{Brokers: seeds}, nil), nil
	case "sarama":
		return polysarama.New(polykafka.Connection{Brokers: seeds}, nil), nil
	case "confluent":
		return confluent.New(polykafka.Connection{Brokers: seeds}, nil), nil
	}
	return nil, fmt.Errorf("unknown -backend %q (available: franz, kafkago, sarama, confluent)", name)
}

// partStats is what happened on one partition.
type partStats struct {
	produced, consumed atomic.Int64
	created            time.Time // when the partition was created during the run; zero for the first ones
	firstAt            atomic.Int64
	decision           atomic.Pointer[discovery.Decision] // the first: where the group started
	later              atomic.Int32                       // start decisions after the first
}

type demo struct {
	out   io.Writer
	parts [after]partStats
	mu    sync.Mutex
	acked map[string]int32 // value -> partition, for every acknowledged record
	seen  map[string]bool
}

// OnStartDecision implements consumer.HookStartDecision.
func (d *demo) OnStartDecision(dec discovery.Decision) {
	ps := &d.parts[dec.Partition]
	if !ps.decision.CompareAndSwap(nil, &dec) {
		ps.later.Add(1)
	}
	policy := ""
	if dec.Reason != discovery.ReasonCommitted {
		policy = ", policy " + dec.Policy.String()
	}
	fmt.Fprintf(d.out, "  decision: partition %d starts at offset %d (%s%s)\n", dec.Partition, dec.Offset, dec.Reason, policy)
}

// OnPartitionsDiscovered implements consumer.HookPartitionsDiscovered.
func (d *demo) OnPartitionsDiscovered(g discovery.Growth) {
	fmt.Fprintf(d.out, "  discovery: %s grew from %d to %d partitions; rebalancing\n", g.Topic, g.From, g.To)
}

// run runs the demo, printing to out, which must be safe for concurrent
// writes (hooks print from the consumer's goroutines).
func run(ctx context.Context, out io.Writer, brokers, backendName string, duration time.Duration, rate int, interval time.Duration, verbose bool) error {
	if err := checkFlags(duration, rate, interval); err != nil {
		return err
	}
	seeds := strings.Split(brokers, ",")
	if brokers == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
		if err != nil {
			return fmt.Errorf("start embedded cluster: %w", err)
		}
		defer cluster.Close()
		seeds = cluster.ListenAddrs()
		fmt.Fprintf(out, "embedded Kafka cluster (kfake, 3 brokers) at %s\n", strings.Join(seeds, ","))
	}
	b, err := newBackend(backendName, seeds)
	if err != nil {
		return err
	}

	// A neutral producer and admin, independent of the backend under test.
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	group := "billing-" + topic
	if err := createTopic(ctx, adm, topic); err != nil {
		return err
	}
	d := &demo{out: out, acked: make(map[string]int32), seen: make(map[string]bool)}
	start := time.Now()
	// History the group must not read: it predates the group (latest).
	for p := int32(0); p < before; p++ {
		for i := 0; i < 10; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("history-%d-%d", p, i))}).FirstErr(); err != nil {
				return fmt.Errorf("write history: %w", err)
			}
		}
	}
	fmt.Fprintf(out, "topic %s: %d partitions, 10 old records each; group %s starts at Initial=latest on backend %s\n",
		topic, before, group, b.Name())

	logLevel := slog.LevelError
	if verbose {
		logLevel = slog.LevelInfo
	}
	c, err := consumer.New(ctx, b, group, []string{topic}, &consumer.Options{
		DiscoveryInterval: interval,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel})),
		Hooks:             []any{d},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
			v := string(r.Value)
			if strings.HasPrefix(v, "history-") {
				return fmt.Errorf("read old record %q although Initial is latest", v)
			}
			ps := &d.parts[r.Partition]
			ps.firstAt.CompareAndSwap(0, time.Now().UnixNano())
			d.mu.Lock()
			if !d.seen[v] {
				d.seen[v] = true
				ps.consumed.Add(1)
			}
			d.mu.Unlock()
			return nil
		})
	}()
	if err := waitFor(ctx, 30*time.Second, func() bool { return len(c.Assignment()) == before }); err != nil {
		return fmt.Errorf("the group did not take its %d partitions: %w", before, err)
	}

	// Produce for duration; grow the topic a third of the way through.
	fmt.Fprintf(out, "producing %d records/s for %v; the topic grows to %d partitions at %v\n", rate, duration, after, duration/3)
	var npart atomic.Int32
	npart.Store(before)
	grown := make(chan error, 1)
	go func() {
		select {
		case <-time.After(duration / 3):
		case <-ctx.Done():
			grown <- ctx.Err()
			return
		}
		err := growTopic(ctx, adm, topic)
		if err == nil {
			now := time.Now()
			for p := before; p < after; p++ {
				d.parts[p].created = now
			}
			err = waitFor(ctx, 30*time.Second, func() bool {
				leader, _, _ := cl.PartitionLeader(topic, after-1)
				if leader < 0 {
					cl.ForceMetadataRefresh()
				}
				return leader >= 0
			})
			npart.Store(after)
			fmt.Fprintf(out, "  +%.1fs: topic grown to %d partitions; the producer writes to all of them\n", time.Since(start).Seconds(), after)
		}
		grown <- err
	}()

	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	deadline := time.After(duration)
	var seq int
	produceStart := time.Now()
produce:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runErr:
			return fmt.Errorf("consumer stopped: %w", err)
		case <-deadline:
			break produce
		case <-progress.C:
			fmt.Fprintf(out, "  +%.0fs: produced %d, consumed %d\n", time.Since(start).Seconds(), d.totalProduced(), d.totalConsumed())
		case <-tick.C:
			p := int32(seq % int(npart.Load()))
			v := fmt.Sprintf("rec-%d", seq)
			seq++
			d.parts[p].produced.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err != nil {
					fmt.Fprintf(os.Stderr, "produce %s to partition %d failed: %v\n", v, r.Partition, err)
					d.parts[r.Partition].produced.Add(-1)
					return
				}
				d.mu.Lock()
				d.acked[v] = r.Partition
				d.mu.Unlock()
			})
		}
	}
	elapsed := time.Since(produceStart)
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if msg := rateShortfall(seq, elapsed, rate); msg != "" {
		fmt.Fprintln(out, msg)
	}
	if err := <-grown; err != nil {
		return fmt.Errorf("grow topic: %w", err)
	}
	fmt.Fprintf(out, "producer done: %d records; waiting up to 30s for the consumer to catch up\n", d.totalProduced())
	_ = waitFor(ctx, 30*time.Second, func() bool { return d.totalConsumed() >= d.totalProduced() })
	cancelRun()
	if err := <-runErr; err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close consumer: %w", err)
	}
	return d.report(out)
}

// rateShortfall returns a note if sent records over elapsed fell more than
// 10% short of rate per second, or "".
func rateShortfall(sent int, elapsed time.Duration, rate int) string {
	if elapsed <= 0 {
		return ""
	}
	achieved := float64(sent) / elapsed.Seconds()
	if achieved >= 0.9*float64(rate) {
		return ""
	}
	return fmt.Sprintf("note: the producer achieved %.0f records/s, below the requested %d (one record per tick; the ticker cannot fire that often here)", achieved, rate)
}

func (d *demo) totalProduced() (n int64) {
	for i := range d.parts {
		n += d.parts[i].produced.Load()
	}
	return n
}

func (d *demo) totalConsumed() (n int64) {
	for i := range d.parts {
		n += d.parts[i].consumed.Load()
	}
	return n
}

// report prints the per-partition table to out and returns an error if
// anything was lost. "started at" and "reason" are the partition's first
// start decision; "later" counts the decisions after it.
func (d *demo) report(out io.Writer) error {
	d.mu.Lock()
	lostBy := make(map[int32]int)
	for v, p := range d.acked {
		if !d.seen[v] {
			lostBy[p]++
		}
	}
	d.mu.Unlock()
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "partition\tproduced\tconsumed\tlost\tstarted at\treason\tlater decisions\tcreation -> first record\t")
	var lost int
	for p := range d.parts {
		ps := &d.parts[p]
		start, reason := "-", "-"
		if dec := ps.decision.Load(); dec != nil {
			start, reason = fmt.Sprint(dec.Offset), string(dec.Reason)
		}
		latency := "-"
		if first := ps.firstAt.Load(); first != 0 && !ps.created.IsZero() {
			latency = time.Unix(0, first).Sub(ps.created).Round(time.Millisecond).String()
		}
		lost += lostBy[int32(p)]
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t\n", p, ps.produced.Load(), ps.consumed.Load(), lostBy[int32(p)], start, reason, ps.later.Load(), latency)
	}
	_ = w.Flush()
	if lost > 0 {
		return fmt.Errorf("%d records lost", lost)
	}
	fmt.Fprintln(out, "0 records lost")
	return nil
}

func createTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	resp, err := adm.CreateTopic(ctx, before, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return waitFor(ctx, 30*time.Second, func() bool {
		md, err := adm.Metadata(ctx, topic)
		return err == nil && md.Topics[topic].Err == nil && len(md.Topics[topic].Partitions) == before
	})
}

func growTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	resp, err := adm.UpdatePartitions(ctx, after, topic)
	if err != nil {
		return err
	}
	r, err := resp.On(topic, nil)
	if err == nil {
		err = r.Err
	}
	return err
}

// waitFor polls cond every 50ms until it holds, d passes, or ctx is done.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
