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
	if h == nil {
		return polykafka.NewError(polykafka.InvalidArgument, "consumer: Run", "handler is nil", nil)
	}
	return c.loop(ctx, "consumer: Run", true, func(ctx context.Context, halt *atomic.Bool, ps *partState, run []polykafka.Record) error {
		for len(run) > 0 {
			n, err := handleRun(ctx, halt, ps, run, h)
			if err == nil {
				return nil
			}
			// run[n] failed: apply the error policy to it alone.
			r := run[n]
			if err := c.handle(ctx, ps, r.Offset, func() error { return h(ctx, r) }, err); err != nil {
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

// RunBatch is Run with a handler that receives consecutive records of one
// partition at a time (at most Options.MaxPollRecords).
func (c *Consumer) RunBatch(ctx context.Context, h BatchHandler) error {
	if h == nil {
		return polykafka.NewError(polykafka.InvalidArgument, "consumer: RunBatch", "handler is nil", nil)
	}
	return c.loop(ctx, "consumer: RunBatch", true, func(ctx context.Context, _ *atomic.Bool, ps *partState, run []polykafka.Record) error {
		start := ps.start.Load()
		i := 0
		for i < len(run) && run[i].Offset < start {
			i++
		}
		batch := run[i:]
		if len(batch) == 0 || ps.gone.Load() {
			return nil
		}
		fn := func() error { return h(ctx, batch) }
		return c.handle(ctx, ps, batch[len(batch)-1].Offset, fn, call(fn))
	}, nil)
}

// Poll returns the next records of assigned partitions, blocking until
// there is at least one, ctx is done (ctx's error), or the consumer is
// closed (an error with code Closed). The caller processes them and calls
// Mark; with CommitPeriodic marked records are committed in the
// background, with CommitManual at Commit.
func (c *Consumer) Poll(ctx context.Context) ([]*polykafka.Record, error) {
	const op = "consumer: Poll"
	var out []*polykafka.Record
	err := c.loop(ctx, op, false, func(ctx context.Context, _ *atomic.Bool, ps *partState, run []polykafka.Record) error {
		for i := range run {
			if run[i].Offset >= ps.start.Load() && !ps.gone.Load() {
				out = append(out, &run[i])
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

// loop is the fetch loop shared by Run, RunBatch and Poll: it hands each
// run of consecutive records of one owned partition to deliver, and returns
// nil after a fetch was delivered if stop (when not nil) says so. With
// reuse, one record buffer serves every fetch (the records are handed out
// by value or only for the duration of a call); without it, every fetch
// gets a new buffer (Poll's records are the caller's).
func (c *Consumer) loop(ctx context.Context, op string, reuse bool, deliver func(context.Context, *atomic.Bool, *partState, []polykafka.Record) error, stop func() bool) error {
	// Backoff between fetches that return an error the consumer goes on from
	// and no records, so that a failing client is not polled in a busy loop.
	const (
		fetchBackoffMin = 50 * time.Millisecond
		fetchBackoffMax = time.Second
	)

	if !c.polling.CompareAndSwap(false, true) {
		return polykafka.NewError(polykafka.InvalidArgument, op, "another Run, RunBatch or Poll is in progress", nil)
	}
	c.pollMu.Lock()
	c.runGo.Store(goid())
	defer func() {
		c.runGo.Store(0)
		c.pollMu.Unlock()
		c.polling.Store(false)
	}()
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	if e := c.failed.Load(); e != nil {
		return *e
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.bg, cancel)()
	defer context.AfterFunc(c.stop, cancel)()
	var halt atomic.Bool
	defer context.AfterFunc(ctx, func() { halt.Store(true) })()

	var buf []polykafka.Record
	backoff := time.Duration(0)
	for {
		recs, err := c.d.Fetch(ctx, c.s.MaxPollRecords, buf)
		if reuse && cap(recs) > cap(buf) {
			buf = recs
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
				backoff = min(max(2*backoff, fetchBackoffMin), fetchBackoffMax)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					if e := c.failed.Load(); e != nil {
						return *e
					}
					return nil
				case <-t.C:
				}
			}
		} else {
			backoff = 0
		}
		for i := 0; i < len(recs); {
			j := i + 1
			for j < len(recs) && recs[j].Partition == recs[i].Partition && recs[j].Topic == recs[i].Topic {
				j++
			}
			run := recs[i:j]
			i = j
			c.mu.Lock()
			ps := c.parts[run[0].TopicPartition()]
			c.mu.Unlock()
			if ps == nil {
				// Not assigned, or assigned but not decided: the driver
				// must not return such records; never hand them out.
				continue
			}
			if ctx.Err() != nil {
				return nil // stopping: the rest is fetched again by the next owner
			}
			if err := deliver(ctx, &halt, ps, run); err != nil {
				return err
			}
		}
		if stop != nil && stop() {
			return nil
		}
	}
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

// handle applies the error policy to the record(s) of ps ending at offset
// last, whose first attempt returned err (nil: success): it retries fn as
// the policy says, and marks them processed on success.
func (c *Consumer) handle(ctx context.Context, ps *partState, last int64, fn func() error, err error) error {
	backoff := c.s.OnError.Backoff
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			err = call(fn)
		}
		if err == nil {
			ps.processed.Store(last + 1)
			return nil
		}
		if ctx.Err() != nil || ps.gone.Load() {
			return nil // shutting down or revoked: not processed, not a failure
		}
		pol := c.s.OnError
		if pol.Retry && (pol.MaxAttempts == 0 || attempt < pol.MaxAttempts) {
			c.s.Logger.Warn("polykafka: handler failed; retrying", "group", c.group, "partition", ps.tp.String(),
				"offset", last, "attempt", attempt, "backoff", backoff, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, pol.MaxBackoff)
			continue
		}
		ferr := polykafka.NewError(polykafka.Unknown, "consumer: handler",
			fmt.Sprintf("failed at %s offset %d after %d attempt(s); the consumer stopped", ps.tp, last, attempt), err)
		c.failed.Store(&ferr)
		attrs := []any{"group", c.group, "partition", ps.tp.String(), "offset", last, "err", err}
		var pe *PanicError
		if errors.As(err, &pe) {
			attrs = append(attrs, "stack", string(pe.Stack))
		}
		c.s.Logger.Error("polykafka: handler failed; stopping the consumer", attrs...)
		cctx, cancel := context.WithTimeout(context.Background(), c.s.CloseTimeout)
		defer cancel()
		if cerr := c.commitProcessed(cctx, nil); cerr != nil {
			c.s.Logger.Warn("polykafka: commit after handler failure failed", "group", c.group, "err", cerr)
		}
		return ferr
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
