// Package consumer is the portable consumer-group member of polykafka.
//
// A [Consumer] joins a group on any backend (see package adapters/...),
// decides where every assigned partition starts with the start-offset rule
// of package discovery, stores that decision before the first record of
// the partition is handed out, watches its topics for new partitions, and
// commits processed offsets at least once.
//
//	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: brokers}), "billing", []string{"orders"}, nil)
//	if err != nil { ... }
//	defer c.Close()
//	err = c.Run(ctx, func(ctx context.Context, r polykafka.Record) error {
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
// # Concurrency
//
// Options.Concurrency above 1 runs the handlers of Run and RunBatch on that
// many goroutines; Options.Ordering keeps one partition's records
// (ByPartition, the default), one key's records (ByKey; nil and empty keys
// are one key per partition) or nothing (Unordered) in order. Whatever the
// order in which handlers finish, a partition's commit moves only over its
// contiguous processed prefix, on the periodic commit, Commit, revoke and
// Close. A revoke waits (up to Options.CloseTimeout) for the handlers in
// flight on the revoked partitions, then commits; a loss cancels their
// contexts and commits nothing of them. The records held are bounded by
// Options.MaxBufferedRecords, by pausing fetches. Workers take records in
// batches sized by the handler's measured speed (one at a time for a slow
// handler); a worker stuck in one call gives back the records it has not
// started, so a slow record holds back only its own partition or key.
// ErrorPolicy.DeadLetter
// sends records that failed for good to a dead-letter topic (see
// DeadLetter for the headers).
//
// # Errors
//
// Errors are *polykafka.Error values: use polykafka.Code, errors.Is with
// polykafka.ErrNotFound and friends, or errors.As to reach the backend's
// native error. context.Canceled is returned as it is; a deadline that
// expires while the cluster does not answer is an Unavailable error that
// still matches errors.Is(err, context.DeadlineExceeded).
//
// Which errors stop the consumer is decided here, the same way on every
// backend: authorization failures (PermissionDenied), a capability the
// backend or broker lacks (Unimplemented), a fenced member (Fenced) and a
// start decision that cannot be made for a reason other than a transient
// one. Everything else (leader moves, unavailable brokers, rebalances) is
// logged at warn level and retried; an out-of-range fetch position follows
// Options.OutOfRange.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/backoff"
	"github.com/polykafka/polykafka/internal/errs"
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
	bg       context.Context  // ends at Close
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	// stop ends a Run in progress when the consumer fails for good (a
	// start decision that cannot be made, a fatal fetch error).
	stop       context.Context
	stopCancel context.CancelFunc
	failed     atomic.Pointer[error]

	mu          sync.Mutex
	parts       map[polykafka.TopicPartition]*partState
	counts      map[string]int32 // latest partition counts seen
	assignFails int              // consecutive retryable start-decision failures
	rejoinTimer *time.Timer      // a rejoin scheduled after such a failure
	assignedCh  chan struct{}    // closed (and replaced) when partitions are assigned
	saveCancel  context.CancelFunc

	commitMu sync.Mutex // serialises commits

	eng        atomic.Pointer[engine]            // the engine of a Run or RunBatch with Concurrency > 1
	userPaused map[polykafka.TopicPartition]bool // guarded by mu
	pollTracks map[*partState]*track             // Poll with Concurrency > 1; guarded by mu
	pollHeld   int                               // records handed out by Poll, not marked; guarded by mu
	pollRoom   chan struct{}                     // signalled when Mark brings pollHeld to the low mark

	polling   atomic.Bool // a Run, RunBatch or Poll is in progress
	pollMu    sync.Mutex  // held by Run, RunBatch and Poll while they work
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
	baseline  int32
	start     atomic.Int64 // records before it are not handed out
	processed atomic.Int64 // next offset to commit
	committed int64        // guarded by Consumer.commitMu
	gone      atomic.Bool  // revoked or lost
}

// New creates a member of group reading topics on backend b. It checks
// that every topic exists (an error with code NotFound otherwise), joins
// the group and returns without waiting for the first assignment (see
// AwaitAssignment).
//
// ctx bounds New itself; if it has no deadline, Options.CloseTimeout does.
// While the cluster is unavailable (no broker reachable, a topic's leader
// not available) New retries, with backoff, until ctx's deadline; if no
// broker answers in time, it returns an Unavailable error.
func New(ctx context.Context, b driver.Backend, group string, topics []string, opts *Options) (*Consumer, error) {
	const op = "consumer: New"
	invalid := func(msg string) error { return polykafka.NewError(polykafka.InvalidArgument, op, msg, nil) }
	switch {
	case b == nil:
		return nil, invalid("backend is nil")
	case group == "":
		return nil, invalid("group is empty")
	case opts != nil && opts.Partitions != nil:
		return nil, invalid("Options.Partitions is for NewReader: a group assigns its members' partitions")
	}
	return open(ctx, op, group, topics, opts, func(ctx context.Context, c *Consumer, cfg driver.ConsumerConfig) (driver.Consumer, error) {
		return b.OpenConsumer(ctx, cfg)
	})
}

// open is New and NewReader after their own checks: opener opens the
// driver (a group member, or a reader behind a shim).
func open(ctx context.Context, op, group string, topics []string, opts *Options,
	opener func(context.Context, *Consumer, driver.ConsumerConfig) (driver.Consumer, error),
) (*Consumer, error) {
	invalid := func(msg string) error { return polykafka.NewError(polykafka.InvalidArgument, op, msg, nil) }
	if len(topics) == 0 {
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
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.CloseTimeout)
		defer cancel()
	}

	c := &Consumer{
		group:      group,
		topics:     slices.Clone(topics),
		s:          s,
		ready:      make(chan struct{}),
		parts:      make(map[polykafka.TopicPartition]*partState),
		assignedCh: make(chan struct{}),
		userPaused: make(map[polykafka.TopicPartition]bool),
		pollTracks: make(map[*partState]*track),
		pollRoom:   make(chan struct{}, 1),
	}
	c.bg, c.bgCancel = context.WithCancel(context.Background())
	c.stop, c.stopCancel = context.WithCancel(context.Background())

	cfg := driver.ConsumerConfig{
		Group:         group,
		Topics:        c.topics,
		Handler:       (*groupHandler)(c),
		ReadCommitted: s.ReadCommitted,
		GroupProtocol: driver.GroupProtocol(s.GroupProtocol),
		Logger:        s.Logger,
	}
	var d driver.Consumer
	err = untilDeadline(ctx, s.Logger, polykafka.Code, func() error {
		var err error
		d, err = opener(ctx, c, cfg)
		return err
	})
	if err != nil {
		c.fail(err)
		if ctx.Err() != nil && polykafka.Code(err) == polykafka.Unavailable {
			return nil, errs.Deadline(op, "no broker answered before the deadline", ctx.Err(), err)
		}
		return nil, errs.Wrap(op, err, polykafka.Code)
	}
	c.d = d
	c.store = s.Store
	if c.store == nil {
		c.store = offsetstore.NewKafka(group, d)
	}

	// The first request to the cluster: bounded here, whatever the
	// client's own dial timeouts are, and retried while the cluster is
	// unavailable (a broker restarting, a network cut) until ctx is done.
	var counts map[string]int32
	err = within(ctx, func(ctx context.Context) error {
		return untilDeadline(ctx, s.Logger, c.classify, func() error {
			var err error
			counts, err = d.PartitionCounts(ctx, c.topics)
			return err
		})
	})
	if err != nil {
		c.fail(err)
		closeDriver(d, s.CloseTimeout)
		if ctx.Err() != nil {
			return nil, errs.Deadline(op, "no broker answered before the deadline", ctx.Err(), err)
		}
		return nil, c.wrap(op, err)
	}
	c.known = counts
	c.counts = counts
	close(c.ready)
	if st, ok := d.(interface{ start(map[string]int32) }); ok {
		st.start(counts) // a reader assigns its partitions now
	}

	if s.DiscoveryInterval > 0 {
		w := discovery.NewWatcher(d, counts, s.DiscoveryInterval, s.Logger, c.onGrowth)
		c.goBG(w.Run)
	}
	if s.Commit == CommitPeriodic {
		c.goBG(c.commitLoop)
	}
	return c, nil
}

// within runs fn with ctx and returns its error, or ctx's error as soon as
// ctx is done even if fn has not returned (it is left to finish on its
// own): the portable layer bounds calls into clients that do not.
func within(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// untilDeadline runs fn until it succeeds, fails with an error that
// classify does not call Unavailable, or ctx is done (then it returns fn's
// last error), waiting openRetry between attempts: how New waits for a
// cluster that does not answer yet, the same on every backend.
func untilDeadline(ctx context.Context, logger *slog.Logger, classify func(error) polykafka.ErrorCode, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || ctx.Err() != nil || classify(err) != polykafka.Unavailable {
			return err
		}
		wait := openRetry.Delay(attempt)
		logger.Warn("polykafka: the cluster is not available; retrying until the deadline", "attempt", attempt, "in", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return err
		}
	}
}

// openRetry is the backoff of untilDeadline.
var openRetry = backoff.Schedule{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// closeDriver closes d in the background, bounded by timeout.
func closeDriver(d driver.Consumer, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		defer cancel()
		_ = d.Close(ctx)
	}()
}

// fail marks New as failed so that a concurrent Assigned call returns.
func (c *Consumer) fail(err error) {
	c.newErr = err
	c.closed.Store(true)
	close(c.ready)
	c.bgCancel()
	c.stopCancel()
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
	return errs.Wrap(op, err, c.classify)
}

// classify is the error's code: its own if it is a *polykafka.Error, else
// the driver's classification.
func (c *Consumer) classify(err error) polykafka.ErrorCode {
	if code := polykafka.Code(err); code != polykafka.Unknown {
		return code
	}
	return c.d.ErrorCode(err)
}

// stopWith makes err the consumer's sticky failure and ends a Run in
// progress, which returns err.
func (c *Consumer) stopWith(err error) {
	c.failed.CompareAndSwap(nil, &err)
	c.stopCancel()
}

func (c *Consumer) onGrowth(ctx context.Context, counts map[string]int32, grown []discovery.Growth) {
	// Under KIP-848 the coordinator notices new partitions itself and
	// assigns them incrementally: a forced rebalance would only add a
	// round trip, so growth is only reported.
	kip848 := c.s.GroupProtocol == GroupProtocolConsumer
	for _, g := range grown {
		if kip848 {
			c.s.Logger.Info("polykafka: partitions added; the group coordinator assigns them", "group", c.group, "topic", g.Topic, "from", g.From, "to", g.To)
		} else {
			c.s.Logger.Info("polykafka: partitions added; rebalancing", "group", c.group, "topic", g.Topic, "from", g.From, "to", g.To)
		}
		c.eachHook(func(h any) {
			if h, ok := h.(HookPartitionsDiscovered); ok {
				h.OnPartitionsDiscovered(g)
			}
		})
	}
	c.mu.Lock()
	c.counts = counts
	c.mu.Unlock()
	if kip848 {
		return
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

// AwaitAssignment blocks until this member owns at least one partition
// whose start was decided, and returns the assignment. It returns ctx's
// error if that does not happen before ctx is done (a group with more
// members than partitions leaves some members without any), and an error
// with code Closed if the consumer is closed. Records are fetched only
// while Run, RunBatch or Poll runs, but assignment does not wait for them.
func (c *Consumer) AwaitAssignment(ctx context.Context) ([]polykafka.TopicPartition, error) {
	for {
		c.mu.Lock()
		n, ch := len(c.parts), c.assignedCh
		c.mu.Unlock()
		if n > 0 {
			return c.Assignment(), nil
		}
		if c.closed.Load() {
			return nil, polykafka.NewError(polykafka.Closed, "consumer: AwaitAssignment", "", nil)
		}
		if e := c.failed.Load(); e != nil {
			return nil, *e
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.bg.Done():
		case <-c.stop.Done():
		}
	}
}

func compareTP(a, b polykafka.TopicPartition) int {
	if a.Topic != b.Topic {
		return strings.Compare(a.Topic, b.Topic)
	}
	return int(a.Partition - b.Partition)
}

// Buffered returns the records the member holds with Options.Concurrency
// above 1: fetched by Run or RunBatch and not yet processed (queued for a
// handler or in one), or handed out by Poll and not yet marked. It stays
// within Options.MaxBufferedRecords. With Concurrency at most 1 it is 0.
func (c *Consumer) Buffered() int {
	if e := c.eng.Load(); e != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.held
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pollHeld
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
// be delivered. Every partition must be assigned to this member (an error
// with code InvalidArgument names the first that is not). It returns an
// error with code Unimplemented if the backend cannot pause.
func (c *Consumer) Pause(ctx context.Context, tps ...polykafka.TopicPartition) error {
	return c.pauseResume(ctx, "consumer: Pause", tps, true)
}

// Resume resumes fetching tps paused by Pause. Every partition must be
// assigned to this member, as for Pause.
func (c *Consumer) Resume(ctx context.Context, tps ...polykafka.TopicPartition) error {
	return c.pauseResume(ctx, "consumer: Resume", tps, false)
}

func (c *Consumer) pauseResume(ctx context.Context, op string, tps []polykafka.TopicPartition, pause bool) error {
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	p, ok := c.d.(driver.Pauser)
	if !ok {
		return polykafka.NewError(polykafka.Unimplemented, op, "backend cannot pause partitions", nil)
	}
	c.mu.Lock()
	for _, tp := range tps {
		if c.parts[tp] == nil {
			c.mu.Unlock()
			return polykafka.NewError(polykafka.InvalidArgument, op, tp.String()+" is not assigned to this member", nil)
		}
	}
	for _, tp := range tps {
		if pause {
			c.userPaused[tp] = true
		} else {
			delete(c.userPaused, tp)
		}
	}
	c.mu.Unlock()
	if pause {
		return c.wrap(op, p.Pause(ctx, tps))
	}
	return c.wrap(op, p.Resume(ctx, tps))
}

// Close stops Run, RunBatch and Poll (they return nil), waits for the
// handler call in progress, commits processed offsets, leaves the group and
// releases the client. It is idempotent: later calls return the first
// call's result. Close is CloseContext with context.Background().
//
// Each phase has its own bound, so that a handler that overruns does not
// cost the commit its chance: waiting for the handler takes at most
// Options.CloseTimeout, the commit and leaving the group at most 10s each
// after that.
//
// Do not call Close synchronously from within a handler: it waits for the
// handler in progress, which cannot return while it waits, so it would
// take the whole CloseTimeout. From a handler, call CloseContext with the
// handler's context (it fails at once), close from another goroutine
// (go c.Close()), or cancel Run's context and Close after Run returned.
func (c *Consumer) Close() error { return c.CloseContext(context.Background()) }

// CloseContext is Close, and ctx bounds its wait for the handler call in
// progress too (the commit and the leave have their own bounds). Given the
// context a handler received (or one derived from it), it recognises that
// it was called from inside a handler, which it would wait for: it fails at
// once with an error with code InvalidArgument and closes nothing.
func (c *Consumer) CloseContext(ctx context.Context) error {
	const op = "consumer: Close"
	if h, _ := ctx.Value(handlerKey{}).(*Consumer); h == c {
		return polykafka.NewError(polykafka.InvalidArgument, op,
			"called with a handler's context, from inside the handler Close would wait for: return from the handler and Close after Run returns, or Close from another goroutine", nil)
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeDone {
		return c.closeErr
	}
	c.closeDone = true

	c.closed.Store(true)
	c.bgCancel() // stops the watcher, the commit loop and a Run in progress
	c.mu.Lock()
	if c.rejoinTimer != nil {
		c.rejoinTimer.Stop()
	}
	c.mu.Unlock()
	waitCh := make(chan struct{})
	go func() {
		// Acquiring pollMu means the Run in progress has returned.
		c.pollMu.Lock()
		//lint:ignore SA2001 an empty critical section: waits for Run to release pollMu
		c.pollMu.Unlock()
		c.bgWG.Wait()
		close(waitCh)
	}()
	var errList []error
	select {
	case <-waitCh:
	case <-time.After(c.s.CloseTimeout):
		errList = append(errList, polykafka.NewError(polykafka.Unavailable, op,
			"the handler did not return within CloseTimeout ("+c.s.CloseTimeout.String()+"); committing what was processed before it", nil))
	case <-ctx.Done():
		errList = append(errList, errs.Deadline(op, "the handler did not return before ctx was done; committing what was processed before it", ctx.Err(), nil))
	}
	cctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
	if err := c.commitProcessed(cctx, nil); err != nil {
		errList = append(errList, c.wrap(op, err))
	}
	cancel()
	lctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
	if err := within(lctx, c.d.Close); err != nil {
		if lctx.Err() != nil {
			err = errs.Deadline(op, "leaving the group did not finish", lctx.Err(), nil)
		}
		errList = append(errList, c.wrap(op, err))
	}
	cancel()
	c.stopCancel()
	c.closeErr = errors.Join(errList...)
	return c.closeErr
}

// phaseTimeout bounds the commit and the leave of Close, each.
const phaseTimeout = 10 * time.Second

// handlerKey is the key of the value that marks the contexts given to
// handlers: the *Consumer running them, so that CloseContext recognises a
// call from inside a handler without knowing which goroutine runs it.
type handlerKey struct{}

// retry runs fn until it succeeds, fails with an error that is not
// Unavailable, ctx is done, or 5 attempts (about 3s) failed. Rebalancing
// errors are not retried: the rebalance that caused them brings a new
// assignment.
func (c *Consumer) retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = fn(); err == nil {
			return nil
		}
		if c.classify(err) != polykafka.Unavailable || attempt == 5 {
			return err
		}
		if !queryRetry.Wait(ctx, attempt) {
			return err
		}
	}
	return err
}

// queryRetry is the backoff between attempts of retry.
var queryRetry = backoff.Schedule{Min: 100 * time.Millisecond, Max: time.Second}
