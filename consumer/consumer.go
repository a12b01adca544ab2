// Package consumer is the portable consumer-group member of polykafka.
//
// A [Consumer] joins a group on any backend (see package adapters/...),
// decides where every assigned partition starts with the start-offset rule
// of package discovery, stores that decision before the first record of
// the partition is handed out, watches its topics for new partitions, and
// commits processed offsets at least once.
//
//	c, err := consumer.New(ctx, franz.New(kgo.SeedBrokers(addr)), "billing", []string{"orders"}, nil)
//	if err != nil { ... }
//	defer c.Close()
//	err = c.Run(ctx, func(ctx context.Context, r *polykafka.Record) error {
//		return process(r)
//	})
//
// # Delivery
//
// Delivery is at least once. An offset is committed only after the handler
// returned nil for that record and for every record before it in its
// partition. After a crash, a rebalance or a handler failure, records after
// the last committed offset are delivered again.
//
// # Errors
//
// Errors are *polykafka.Error values: use polykafka.Code, errors.Is with
// polykafka.ErrNotFound and friends, or errors.As to reach the backend's
// native error. Context errors are returned as they are.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// Consumer is one member of a consumer group. Its methods are safe for
// concurrent use, except that only one Run, RunBatch or Poll may be in
// progress at a time.
type Consumer struct {
	d      driver.Consumer
	group  string
	topics []string
	s      settings
	store  offsetstore.Store

	known    map[string]int32 // partition counts at New; read-only once ready is closed
	ready    chan struct{}    // closed when New has finished (or failed)
	newErr   error            // set before ready is closed if New failed
	bg       context.Context
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	mu    sync.Mutex
	parts map[polykafka.TopicPartition]*partState

	commitMu sync.Mutex // serialises commits

	polling   atomic.Bool // a Run, RunBatch or Poll is in progress
	pollMu    sync.Mutex  // held by Run, RunBatch and Poll while they work
	failed    atomic.Pointer[error]
	closed    atomic.Bool
	closeMu   sync.Mutex
	closeErr  error
	closeDone bool
}

// partState is the consumer's view of one assigned partition. A pointer is
// replaced on every assignment, so records fetched under an earlier
// assignment can be told apart.
type partState struct {
	tp        polykafka.TopicPartition
	start     int64
	baseline  int32
	processed atomic.Int64 // next offset to commit
	committed int64        // guarded by Consumer.commitMu
	gone      atomic.Bool  // revoked or lost
}

// New creates a member of group reading topics on backend b. It checks
// that every topic exists (an error with code NotFound otherwise), joins
// the group and returns without waiting for the first assignment.
//
// ctx bounds New itself; if it has no deadline, Options.CloseTimeout does.
func New(ctx context.Context, b driver.Backend, group string, topics []string, opts *Options) (*Consumer, error) {
	const op = "consumer: New"
	invalid := func(msg string) error { return polykafka.NewError(polykafka.InvalidArgument, op, msg, nil) }
	switch {
	case b == nil:
		return nil, invalid("backend is nil")
	case group == "":
		return nil, invalid("group is empty")
	case len(topics) == 0:
		return nil, invalid("topics is empty")
	}
	for i, t := range topics {
		if t == "" {
			return nil, invalid(fmt.Sprintf("topics[%d] is empty", i))
		}
		if slices.Contains(topics[:i], t) {
			return nil, invalid(fmt.Sprintf("topics[%d]: %q is listed twice", i, t))
		}
	}
	s, err := opts.settings()
	if err != nil {
		return nil, invalid(err.Error())
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.CloseTimeout)
		defer cancel()
	}

	c := &Consumer{
		group:  group,
		topics: slices.Clone(topics),
		s:      s,
		ready:  make(chan struct{}),
		parts:  make(map[polykafka.TopicPartition]*partState),
	}
	c.bg, c.bgCancel = context.WithCancel(context.Background())

	d, err := b.OpenConsumer(ctx, driver.ConsumerConfig{
		Group:   group,
		Topics:  c.topics,
		Handler: (*groupHandler)(c),
		Logger:  s.Logger,
	})
	if err != nil {
		c.fail(err)
		return nil, polykafka.NewError(polykafka.Unknown, op, "", err)
	}
	c.d = d
	c.store = s.Store
	if c.store == nil {
		c.store = offsetstore.NewKafka(group, d)
	}

	counts, err := d.PartitionCounts(ctx, c.topics)
	if err != nil {
		c.fail(err)
		_ = d.Close(ctx)
		return nil, c.wrap(op, err)
	}
	c.known = counts
	close(c.ready)

	if s.DiscoveryInterval > 0 {
		w := discovery.NewWatcher(d, counts, s.DiscoveryInterval, s.Logger, c.onGrowth)
		c.goBG(w.Run)
	}
	if s.Commit == CommitPeriodic {
		c.goBG(c.commitLoop)
	}
	return c, nil
}

// fail marks New as failed so that a concurrent Assigned call returns.
func (c *Consumer) fail(err error) {
	c.newErr = err
	c.closed.Store(true)
	close(c.ready)
	c.bgCancel()
}

func (c *Consumer) goBG(fn func(context.Context)) {
	c.bgWG.Add(1)
	go func() {
		defer c.bgWG.Done()
		fn(c.bg)
	}()
}

// wrap classifies err with the driver and wraps it once.
func (c *Consumer) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *polykafka.Error
	if errors.As(err, &pe) {
		return err
	}
	return polykafka.NewError(c.d.ErrorCode(err), op, "", err)
}

func (c *Consumer) onGrowth(ctx context.Context, counts map[string]int32, grown []discovery.Growth) {
	for _, g := range grown {
		c.s.Logger.Info("polykafka: partitions added; rebalancing", "group", c.group, "topic", g.Topic, "from", g.From, "to", g.To)
		c.eachHook(func(h any) {
			if h, ok := h.(HookPartitionsDiscovered); ok {
				h.OnPartitionsDiscovered(g)
			}
		})
	}
	if err := c.d.Rejoin(ctx, counts); err != nil && ctx.Err() == nil {
		c.s.Logger.Warn("polykafka: rejoin after partition growth failed", "group", c.group, "err", err)
	}
}

// Group returns the consumer group id.
func (c *Consumer) Group() string { return c.group }

// Assignment returns the partitions currently assigned to this member whose
// start was decided, sorted.
func (c *Consumer) Assignment() []polykafka.TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]polykafka.TopicPartition, 0, len(c.parts))
	for tp := range c.parts {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

func compareTP(a, b polykafka.TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition - b.Partition)
}

// As exposes the backend's native client; see the adapter's package doc
// ("# As"). It returns false for nil or an unsupported target.
func (c *Consumer) As(target any) bool {
	if target == nil {
		return false
	}
	return c.d.As(target)
}

// Pause stops fetching tps until Resume. Records already fetched may still
// be delivered. It returns an error with code Unimplemented if the backend
// cannot pause.
func (c *Consumer) Pause(ctx context.Context, tps ...polykafka.TopicPartition) error {
	const op = "consumer: Pause"
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	p, ok := c.d.(driver.Pauser)
	if !ok {
		return polykafka.NewError(polykafka.Unimplemented, op, "backend cannot pause partitions", nil)
	}
	return c.wrap(op, p.Pause(ctx, tps))
}

// Resume resumes fetching tps paused by Pause.
func (c *Consumer) Resume(ctx context.Context, tps ...polykafka.TopicPartition) error {
	const op = "consumer: Resume"
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	p, ok := c.d.(driver.Pauser)
	if !ok {
		return polykafka.NewError(polykafka.Unimplemented, op, "backend cannot resume partitions", nil)
	}
	return c.wrap(op, p.Resume(ctx, tps))
}

// Close stops Run, RunBatch and Poll (they return nil), waits for the
// handler call in progress, commits processed offsets, leaves the group and
// releases the client, all within Options.CloseTimeout. It is idempotent:
// later calls return the first call's result. Do not call it from a
// handler (it would wait CloseTimeout for that handler to return): cancel
// Run's context instead, and Close after Run returned.
func (c *Consumer) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeDone {
		return c.closeErr
	}
	c.closeDone = true
	const op = "consumer: Close"
	ctx, cancel := context.WithTimeout(context.Background(), c.s.CloseTimeout)
	defer cancel()

	c.closed.Store(true)
	c.bgCancel() // stops the watcher, the commit loop and a Run in progress
	waitCh := make(chan struct{})
	go func() {
		c.pollMu.Lock() // the Run in progress has returned
		c.pollMu.Unlock()
		c.bgWG.Wait()
		close(waitCh)
	}()
	var errs []error
	select {
	case <-waitCh:
	case <-ctx.Done():
		errs = append(errs, polykafka.NewError(polykafka.Unavailable, op, "timed out waiting for the handler to return", nil))
	}
	if err := c.commitProcessed(ctx, nil); err != nil {
		errs = append(errs, err)
	}
	if err := c.d.Close(ctx); err != nil {
		errs = append(errs, c.wrap(op, err))
	}
	c.closeErr = errors.Join(errs...)
	return c.closeErr
}

// retry runs fn until it succeeds, fails with an error that is not
// Unavailable, ctx is done, or 5 attempts (about 3s) failed. Rebalancing
// errors are not retried: the rebalance that caused them brings a new
// assignment.
func (c *Consumer) retry(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = fn(); err == nil {
			return nil
		}
		code := polykafka.Code(err)
		if code == polykafka.Unknown {
			code = c.d.ErrorCode(err)
		}
		if code != polykafka.Unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return err
}
