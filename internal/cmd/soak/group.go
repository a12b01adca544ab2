package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
)

// group is the consumer group: one slot per member, each running a member
// until it is told to restart (churn), its Run fails, or the group stops.
type group struct {
	brokers []string
	backend string
	name    string
	topic   string
	ledger  *ledger
	logger  *slog.Logger
	events  *events

	restart []chan chan struct{} // per slot: restart requests, each with a channel closed when the new member is up
	wg      sync.WaitGroup

	mu         sync.Mutex
	started    int
	runErrors  map[string]int
	newErrors  map[string]int
	closeErrs  int
	slowCloses int // closes that took more than slowClose
	hungCloses int // closes still running after hungClose: abandoned
	maxClose   time.Duration
}

const (
	slowClose = 10 * time.Second
	hungClose = 90 * time.Second
)

func (g *group) start(ctx context.Context, members int) {
	g.runErrors = make(map[string]int)
	g.newErrors = make(map[string]int)
	for i := 0; i < members; i++ {
		ch := make(chan chan struct{}, 1)
		g.restart = append(g.restart, ch)
		g.wg.Add(1)
		go g.slot(ctx, i, ch)
	}
}

// wait returns when every slot has closed its member (after ctx is done).
func (g *group) wait() { g.wg.Wait() }

// churn restarts n members at once, starting at slot first, and waits
// until their replacements are up (consumer.New returned): it reports
// whether they are, false when ctx was done or 2 minutes passed first.
func (g *group) churn(ctx context.Context, first, n int) bool {
	var ups []chan struct{}
	for k := 0; k < n; k++ {
		up := make(chan struct{})
		select {
		case g.restart[(first+k)%len(g.restart)] <- up:
			ups = append(ups, up)
		default: // a restart is pending already
		}
	}
	bound := time.NewTimer(2 * time.Minute)
	defer bound.Stop()
	for _, up := range ups {
		select {
		case <-up:
		case <-bound.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (g *group) slot(ctx context.Context, i int, restart chan chan struct{}) {
	defer g.wg.Done()
	var up chan struct{} // closed once the next member is up
	for ctx.Err() == nil {
		c, err := g.open(ctx, i)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			g.mu.Lock()
			g.newErrors[polykafka.Code(err).String()]++
			g.mu.Unlock()
			g.events.add("member %d: New failed: %v", i, err)
			sleep(ctx, time.Second)
			continue
		}
		if up != nil {
			close(up)
			up = nil
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx, g.handle) }()
		select {
		case err := <-done:
			if ctx.Err() == nil {
				code := "returned nil"
				if err != nil {
					code = polykafka.Code(err).String()
				}
				g.mu.Lock()
				g.runErrors[code]++
				g.mu.Unlock()
				g.events.add("member %d: Run returned (%v), restarting the member", i, err)
			}
		case up = <-restart:
		case <-ctx.Done():
		}
		cancel()
		<-done
		g.close(i, c)
	}
	if up != nil {
		close(up)
	}
}

func (g *group) open(ctx context.Context, i int) (*consumer.Consumer, error) {
	nctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := consumer.New(nctx, backends[g.backend](g.brokers), g.name, []string{g.topic}, &consumer.Options{
		Initial: discovery.Earliest,
		Logger:  g.logger.With("member", i),
	})
	if err == nil {
		g.mu.Lock()
		g.started++
		g.mu.Unlock()
	}
	return c, err
}

func (g *group) handle(_ context.Context, r polykafka.Record) error {
	g.ledger.consume(r.Value)
	return nil
}

// close closes member i's consumer, timing it; a close still running after
// hungClose is abandoned and counted.
func (g *group) close(i int, c *consumer.Consumer) {
	begin := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(hungClose):
		g.mu.Lock()
		g.hungCloses++
		g.mu.Unlock()
		g.events.add("member %d: Close still running after %v: abandoned", i, hungClose)
		return
	}
	took := time.Since(begin)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.maxClose = max(g.maxClose, took)
	if took > slowClose {
		g.slowCloses++
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		g.closeErrs++
		g.events.add("member %d: Close: %v", i, err)
	}
}

// stats returns the group's counters as text for the report.
func (g *group) stats() (started int, runErrors, newErrors string, closes string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started, byCode(g.runErrors), byCode(g.newErrors),
		fmt.Sprintf("max %v, %d over %v, %d hung, %d failed", g.maxClose.Round(time.Millisecond), g.slowCloses, slowClose, g.hungCloses, g.closeErrs)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
