package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/backoff"
	"github.com/polykafka/polykafka/internal/errs"
)

// Handler processes one record. Returning nil marks the record processed;
// an error (or a panic) applies Options.OnError.
//
// The record is passed by value: the handler may keep it (its Key, Value
// and Headers are never reused), and the consumer allocates nothing per
// record to hand it out.
type Handler func(ctx context.Context, r polykafka.Record) error

// BatchHandler processes consecutive records of one partition, in offset
// order. Returning nil marks them all processed; an error (or a panic)
// applies Options.OnError to the whole batch.
//
// The slice and its elements are reused for the next batch: a handler that
// keeps records beyond its return copies them (slices.Clone(rs), or single
// records by value); their Key, Value and Headers are never reused.
type BatchHandler func(ctx context.Context, rs []polykafka.Record) error

// Run fetches records and calls h for each, one at a time, in partition
// order, until ctx is done or the consumer is closed (then it returns nil),
// or until a fetch or the handler fails (see Options.OnError). After a
// failure the consumer stays stopped: later calls of Run, RunBatch and Poll
// return the same error; Close it and create a new one, which resumes at
// the last commit.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	const op = "consumer: Run"
	if h == nil {
		return polykafka.NewError(polykafka.InvalidArgument, op, "handler is nil", nil)
	}
	h = c.wrapHandler(h)
	if c.s.Concurrency > 1 {
		// The engine hands each worker units of records (a lane's in
		// order); the worker calls h for each record of a unit in order.
		// With ByPartition every record of the partition before the one
		// in hand is processed (its lane runs one unit at a time, in
		// order), so each record's offset is marked processed as soon as
		// it is done, as on the serial path: a handler stuck later in the
		// unit does not hold back the commit of those before it.
		byPartition := c.s.Ordering == ByPartition
		e := c.newEngine(false, func(ctx context.Context, tr *track, recs []polykafka.Record) (int, error) {
			done := 0
			for len(recs) > 0 {
				n, err := handleUnit(ctx, &tr.halt, tr.ps, recs, h, byPartition)
				done += n
				if err == nil {
					return done, nil
				}
				r := recs[n]
				fn := func() error { return h(ctx, r) }
				if ok, err := c.settle(ctx, tr.ps, recs[n:n+1], fn, err); !ok {
					return done, err
				}
				if byPartition && r.Offset+1 > tr.ps.processed.Load() {
					tr.ps.processed.Store(r.Offset + 1)
				}
				done++
				recs = recs[n+1:]
			}
			return done, nil
		})
		return c.loop(ctx, op, false, e, e.roomFor, func(_ context.Context, _ *atomic.Bool, ps *partState, run []polykafka.Record) error {
			start := ps.start.Load()
			i := 0
			for i < len(run) && run[i].Offset < start {
				i++
			}
			if i < len(run) {
				e.submit(ps, run[i:])
			}
			return nil
		}, nil)
	}
	return c.loop(ctx, op, true, nil, nil, func(ctx context.Context, halt *atomic.Bool, ps *partState, run []polykafka.Record) error {
		for len(run) > 0 {
			n, err := handleRun(ctx, halt, ps, run, h)
			if err == nil {
				return nil
			}
			// run[n] failed: apply the error policy to it alone.
			r := run[n]
			if err := c.handle(ctx, ps, run[n:n+1], func() error { return h(ctx, r) }, err); err != nil {
				return err
			}
			run = run[n+1:]
		}
		return nil
	}, nil)
}

// handleRun calls h for each record of run in order, marking each processed,
// until one fails (or panics): it returns that record's index and the
// error. One deferred recover covers the whole run, so the per-record path
// is the call, two atomic loads and an atomic store; halt (set when ctx is
// done) stands in for ctx.Err(), which takes a lock.
func handleRun(ctx context.Context, halt *atomic.Bool, ps *partState, run []polykafka.Record, h Handler) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	start := ps.start.Load()
	for n = 0; n < len(run); n++ {
		if ps.gone.Load() || halt.Load() {
			return len(run), nil
		}
		off := run[n].Offset
		if off < start {
			continue
		}
		if err = h(ctx, run[n]); err != nil {
			return n, err
		}
		ps.processed.Store(off + 1)
	}
	return n, nil
}

// handleUnit calls h for each record of recs in order until one fails (or
// panics), or the partition halts or goes: it returns how many records
// were processed, and the failed record's error (its index is n). Unless
// mark is set (every record of the partition before recs is processed) it
// leaves the partition's processed offset to the engine, which moves it
// over the contiguous prefix only.
func handleUnit(ctx context.Context, halt *atomic.Bool, ps *partState, recs []polykafka.Record, h Handler, mark bool) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	for n = 0; n < len(recs); n++ {
		if ps.gone.Load() || halt.Load() {
			return n, nil
		}
		if err = h(ctx, recs[n]); err != nil {
			return n, err
		}
		if mark {
			ps.processed.Store(recs[n].Offset + 1)
		}
	}
	return n, nil
}

// RunBatch is Run with a handler that receives consecutive records of one
// partition at a time (at most Options.MaxPollRecords).
func (c *Consumer) RunBatch(ctx context.Context, h BatchHandler) error {
	const op = "consumer: RunBatch"
	if h == nil {
		return polykafka.NewError(polykafka.InvalidArgument, op, "handler is nil", nil)
	}
	h = c.wrapBatchHandler(h)
	startAt := func(ps *partState, run []polykafka.Record) []polykafka.Record {
		start := ps.start.Load()
		i := 0
		for i < len(run) && run[i].Offset < start {
			i++
		}
		return run[i:]
	}
	if c.s.Concurrency > 1 {
		e := c.newEngine(true, func(ctx context.Context, tr *track, batch []polykafka.Record) (int, error) {
			fn := func() error { return h(ctx, batch) }
			if ok, err := c.settle(ctx, tr.ps, batch, fn, call(fn)); !ok {
				return 0, err
			}
			return len(batch), nil
		})
		return c.loop(ctx, op, false, e, e.roomFor, func(_ context.Context, _ *atomic.Bool, ps *partState, run []polykafka.Record) error {
			if batch := startAt(ps, run); len(batch) > 0 {
				e.submit(ps, batch)
			}
			return nil
		}, nil)
	}
	return c.loop(ctx, op, true, nil, nil, func(ctx context.Context, _ *atomic.Bool, ps *partState, run []polykafka.Record) error {
		batch := startAt(ps, run)
		if len(batch) == 0 || ps.gone.Load() {
			return nil
		}
		fn := func() error { return h(ctx, batch) }
		return c.handle(ctx, ps, batch, fn, call(fn))
	}, nil)
}

// Poll returns the next records of assigned partitions, blocking until
// there is at least one, ctx is done (ctx's error), or the consumer is
// closed (an error with code Closed). The caller processes them and calls
// Mark; with CommitPeriodic marked records are committed in the
// background, with CommitManual at Commit.
//
// The records are the caller's for good: the consumer never reuses or
// modifies them (each Poll returns records of a new buffer), so they stay
// valid after the next Poll, after their partition is revoked, and after
// Close. Marking a record of a partition no longer assigned does nothing.
func (c *Consumer) Poll(ctx context.Context) ([]*polykafka.Record, error) {
	const op = "consumer: Poll"
	var out []*polykafka.Record
	var room func(context.Context) int
	tracked := c.s.Concurrency > 1
	if tracked {
		room = c.pollRoomFor
	}
	err := c.loop(ctx, op, false, nil, room, func(ctx context.Context, _ *atomic.Bool, ps *partState, run []polykafka.Record) error {
		var tr *track
		if tracked {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ps.gone.Load() {
				return nil
			}
			if tr = c.pollTracks[ps]; tr == nil {
				tr = newTrack(context.Background(), ps)
				c.pollTracks[ps] = tr
			}
		}
		for i := range run {
			if run[i].Offset >= ps.start.Load() && !ps.gone.Load() {
				out = append(out, &run[i])
				if tr != nil {
					tr.add(run[i].Offset)
					c.pollHeld++
				}
			}
		}
		return nil
	}, func() bool { return len(out) > 0 })
	if err == nil && len(out) > 0 {
		return out, nil
	}
	if err == nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	return nil, err
}

// pollRoomFor is Poll's bound with Concurrency > 1: while
// MaxBufferedRecords records handed out are not marked, fetching is paused
// until Mark brings them down to half of it. It returns how many records
// the next fetch may return (0: ctx is done).
func (c *Consumer) pollRoomFor(ctx context.Context) int {
	limit := c.s.MaxBufferedRecords
	c.mu.Lock()
	held := c.pollHeld
	c.mu.Unlock()
	if held >= limit {
		e := &engine{c: c}
		e.pause(ctx)
		for held > limit/2 && ctx.Err() == nil {
			select {
			case <-c.pollRoom:
			case <-ctx.Done():
			}
			c.mu.Lock()
			held = c.pollHeld
			c.mu.Unlock()
		}
		e.resume(ctx)
	}
	if ctx.Err() != nil {
		return 0
	}
	return max(1, min(limit-held, c.s.MaxPollRecords))
}

// signalPollRoom wakes a Poll waiting for room. Called with mu held.
func (c *Consumer) signalPollRoom() {
	if c.pollHeld <= c.s.MaxBufferedRecords/2 {
		select {
		case c.pollRoom <- struct{}{}:
		default:
		}
	}
}

// loop is the fetch loop shared by Run, RunBatch and Poll: it hands each
// run of consecutive records of one owned partition to deliver, and returns
// nil after a fetch was delivered if stop (when not nil) says so. With
// reuse, one record buffer serves every fetch (the records are handed out
// by value or only for the duration of a call); without it, every fetch
// gets a new buffer (Poll's records are the caller's), or with eng one the
// engine has done with.
//
// With eng, the engine's workers run while the loop does and have returned
// when it returns; room, when not nil, is called before each fetch and
// says how many records it may return (0: stop).
func (c *Consumer) loop(ctx context.Context, op string, reuse bool, eng *engine, room func(context.Context) int,
	deliver func(context.Context, *atomic.Bool, *partState, []polykafka.Record) error, stop func() bool,
) error {
	// Backoff between fetches that return an error the consumer goes on from
	// and no records, so that a failing client is not polled in a busy loop.
	fetchBackoff := backoff.Schedule{Min: 50 * time.Millisecond, Max: time.Second}

	if !c.polling.CompareAndSwap(false, true) {
		return polykafka.NewError(polykafka.InvalidArgument, op, "another Run, RunBatch or Poll is in progress", nil)
	}
	c.pollMu.Lock()
	defer func() {
		c.pollMu.Unlock()
		c.polling.Store(false)
	}()
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	if e := c.failed.Load(); e != nil {
		return *e
	}
	ctx, cancel := context.WithCancel(context.WithValue(ctx, handlerKey{}, c))
	defer cancel()
	defer context.AfterFunc(c.bg, cancel)()
	defer context.AfterFunc(c.stop, cancel)()
	var halt atomic.Bool
	defer context.AfterFunc(ctx, func() { halt.Store(true) })()
	if eng != nil {
		eng.start(ctx)
		defer eng.stop()
	}

	var buf []polykafka.Record
	fails := 0
	var runs []boundRun
	for {
		n := c.s.MaxPollRecords
		if room != nil {
			if n = room(ctx); n == 0 {
				if e := c.failed.Load(); e != nil {
					return *e
				}
				return nil
			}
		}
		if eng != nil {
			buf = eng.buffer()
		}
		recs, err := c.d.Fetch(ctx, n, buf)
		if reuse && cap(recs) > cap(buf) {
			buf = recs
		}
		if eng != nil {
			eng.fetched(recs)
		}
		if e := c.failed.Load(); e != nil {
			return *e
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if ferr := c.fetchFailed(ctx, op, err); ferr != nil {
				// Sticky: a later Run must not carry on as if nothing
				// happened. Close and create a new consumer.
				if polykafka.Code(ferr) != polykafka.Closed {
					c.stopWith(ferr)
				}
				return ferr
			}
			if len(recs) == 0 {
				fails++
				if !fetchBackoff.Wait(ctx, fails) {
					if e := c.failed.Load(); e != nil {
						return *e
					}
					return nil
				}
			}
		} else {
			fails = 0
		}
		// Bind every run to its partition's state as the fetch returned it,
		// before handing any out: a rebalance while earlier runs are handled
		// marks these states gone, and their records (fetched in the old
		// assignment, from its positions) are dropped rather than handed out
		// under the new assignment, whose fetch starts again at the
		// committed position and would hand them out a second time, below
		// this member's own commit.
		runs = runs[:0]
		c.mu.Lock()
		for i := 0; i < len(recs); {
			j := i + 1
			for j < len(recs) && recs[j].Partition == recs[i].Partition && recs[j].Topic == recs[i].Topic {
				j++
			}
			// A nil state (not assigned, or assigned but not decided: the
			// driver must not return such records) is never handed out.
			if ps := c.parts[recs[i].TopicPartition()]; ps != nil {
				runs = append(runs, boundRun{ps, recs[i:j]})
			}
			i = j
		}
		c.mu.Unlock()
		for _, r := range runs {
			if ctx.Err() != nil {
				return nil // stopping: the rest is fetched again by the next owner
			}
			if r.ps.gone.Load() {
				continue // revoked since the fetch: the next owner fetches it again
			}
			if err := deliver(ctx, &halt, r.ps, r.recs); err != nil {
				return err
			}
		}
		if eng != nil {
			eng.delivered()
		}
		if stop != nil && stop() {
			return nil
		}
	}
}

// boundRun is a run of consecutive records of one partition and the
// partition's state when they were fetched.
type boundRun struct {
	ps   *partState
	recs []polykafka.Record
}

// fetchFailed decides what a fetch error means, the same for every
// backend: out-of-range partitions follow Options.OutOfRange; Closed,
// PermissionDenied, Unimplemented and Fenced stop the consumer (the error
// is returned); anything else is logged and the fetch loop goes on, since
// the clients retry leader moves, unavailable brokers and rebalances
// themselves.
func (c *Consumer) fetchFailed(ctx context.Context, op string, err error) error {
	parts, rest := driver.PartitionErrors(err)
	var oor []polykafka.TopicPartition
	for _, pe := range parts {
		code := c.classify(pe.Err)
		switch {
		case code == polykafka.OffsetOutOfRange:
			oor = append(oor, pe.TopicPartition)
		case fatal(code):
			return c.wrap(op, err)
		default:
			c.s.Logger.Warn("polykafka: fetch error; the client retries", "group", c.group, "partition", pe.TopicPartition.String(), "err", pe.Err)
		}
	}
	if rest != nil {
		code := c.classify(rest)
		switch {
		case code == polykafka.Closed || fatal(code):
			return errs.Wrap(op, rest, func(error) polykafka.ErrorCode { return code })
		case errors.Is(rest, context.Canceled) || errors.Is(rest, context.DeadlineExceeded):
		default:
			c.s.Logger.Warn("polykafka: fetch error; the client retries", "group", c.group, "err", rest)
		}
	}
	if len(oor) > 0 {
		return c.outOfRange(ctx, oor)
	}
	return nil
}

// fatal reports whether an error of this code ends the consumer.
func fatal(code polykafka.ErrorCode) bool {
	switch code {
	case polykafka.PermissionDenied, polykafka.Unimplemented:
		return true
	}
	return code == polykafka.Fenced
}

// handle applies the error policy to the records rs of ps (one record, or
// a batch) whose first attempt returned err (nil: success), and marks them
// processed if they were.
func (c *Consumer) handle(ctx context.Context, ps *partState, rs []polykafka.Record, fn func() error, err error) error {
	ok, err := c.settle(ctx, ps, rs, fn, err)
	if ok {
		ps.processed.Store(rs[len(rs)-1].Offset + 1)
	}
	return err
}

// settle applies the error policy to the records rs of ps whose first
// attempt returned err (nil: success): it retries fn as the policy says and
// dead-letters rs if the policy has a DeadLetter. It reports whether rs
// count as processed, and returns the error that stops the consumer, if
// any (after committing what was processed).
func (c *Consumer) settle(ctx context.Context, ps *partState, rs []polykafka.Record, fn func() error, err error) (bool, error) {
	last := rs[len(rs)-1].Offset
	pol := c.s.OnError
	retryBackoff := backoff.Schedule{Min: pol.Backoff, Max: pol.MaxBackoff}
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			err = call(fn)
		}
		if err == nil {
			return true, nil
		}
		if ctx.Err() != nil || ps.gone.Load() {
			return false, nil // shutting down or revoked: not processed, not a failure
		}
		if pol.Retry && (pol.MaxAttempts == 0 || attempt < pol.MaxAttempts) {
			wait := retryBackoff.Delay(attempt)
			c.s.Logger.Warn("polykafka: handler failed; retrying", "group", c.group, "partition", ps.tp.String(),
				"offset", last, "attempt", attempt, "backoff", wait, "err", err)
			if !backoff.Sleep(ctx, wait) {
				return false, nil
			}
			continue
		}
		var ferr error
		if pol.DeadLetter != nil {
			derr := c.deadLetter(ctx, rs, attempt, err)
			if derr == nil {
				return true, nil
			}
			if ctx.Err() != nil || ps.gone.Load() {
				return false, nil
			}
			ferr = polykafka.NewError(polykafka.Code(derr), "consumer: dead letter",
				fmt.Sprintf("writing %s offset %d to its dead-letter topic failed after the handler failed (%v); the consumer stopped and the record is not committed", ps.tp, last, err), derr)
			c.s.Logger.Error("polykafka: dead-letter write failed; stopping the consumer", "group", c.group, "partition", ps.tp.String(), "offset", last, "err", derr)
		} else {
			ferr = polykafka.NewError(polykafka.Unknown, "consumer: handler",
				fmt.Sprintf("failed at %s offset %d after %d attempt(s); the consumer stopped", ps.tp, last, attempt), err)
			attrs := []any{"group", c.group, "partition", ps.tp.String(), "offset", last, "err", err}
			var pe *PanicError
			if errors.As(err, &pe) {
				attrs = append(attrs, "stack", string(pe.Stack))
			}
			c.s.Logger.Error("polykafka: handler failed; stopping the consumer", attrs...)
		}
		if !c.failed.CompareAndSwap(nil, &ferr) {
			ferr = *c.failed.Load()
		}
		cctx, cancel := context.WithTimeout(context.Background(), c.s.CloseTimeout)
		defer cancel()
		if cerr := c.commitProcessed(cctx, nil); cerr != nil {
			c.s.Logger.Warn("polykafka: commit after handler failure failed", "group", c.group, "err", cerr)
		}
		return false, ferr
	}
}

// call runs fn, turning a panic into an error.
func call(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	return fn()
}

// PanicError is the error a handler panic becomes: errors.As(err, &pe)
// reaches it in the error Run returns. The stack is also logged at error
// level when the consumer stops.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the panicking goroutine's stack (runtime/debug.Stack).
	Stack []byte
}

// Error returns "handler panicked: <value>", without the stack.
func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Unwrap returns Value if it is an error (panic(err)), else nil.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// panicError is the error a handler panic becomes. Called from the deferred
// recover, so the stack is the panicking handler's.
func panicError(p any) error {
	return &PanicError{Value: p, Stack: debug.Stack()}
}
