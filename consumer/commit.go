package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/errs"
	"github.com/polykafka/polykafka/offsetstore"
)

// Mark records rs as processed: at the next commit, each record's partition
// commits the offset after it, if that is beyond what is committed. Run and
// RunBatch mark records themselves when the handler returns nil; callers of
// Poll call Mark. Records of partitions no longer assigned are ignored.
//
// With Options.Concurrency at most 1, marking a record implies that every
// earlier record of its partition was processed: mark in order. Above 1,
// Mark may be called in any order: a partition's commit moves only over
// the contiguous prefix of the records Poll handed out that were marked.
func (c *Consumer) Mark(rs ...*polykafka.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		if r == nil {
			continue
		}
		ps := c.parts[r.TopicPartition()]
		if ps == nil || r.Offset < ps.start.Load() {
			continue
		}
		if c.s.Concurrency > 1 {
			if tr := c.pollTracks[ps]; tr != nil && tr.finish(r.Offset) {
				c.pollHeld--
				c.signalPollRoom()
			}
			continue
		}
		if next := r.Offset + 1; next > ps.processed.Load() {
			ps.processed.Store(next)
		}
	}
}

// Commit synchronously commits the offsets of processed (marked) records.
// It is the way to commit with CommitManual, and may be called in any mode
// but CommitTransactional.
//
// A transient failure (code Unavailable: the coordinator not available or
// moved, a request timeout, a lost connection) is retried with the same
// offsets, up to 5 attempts within ctx, as every commit of the consumer
// is; a refused commit (PermissionDenied, or Rebalancing while the group
// rebalances) returns at once. If ctx's deadline passes first, the error
// has code Unavailable and matches context.DeadlineExceeded.
func (c *Consumer) Commit(ctx context.Context) error {
	const op = "consumer: Commit"
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	if c.s.Commit == CommitTransactional {
		return polykafka.NewError(polykafka.InvalidArgument, op, "the commit mode is CommitTransactional: commit through producer.SendOffsets", nil)
	}
	return c.commitProcessed(ctx, nil)
}

// TransactionOffsets returns the member's group metadata and the offsets
// (with their commit metadata) of processed records not committed yet, for
// producer.SendOffsets. It fails with code Unimplemented if the backend
// cannot report its group metadata, and with Rebalancing while the member
// has no generation.
func (c *Consumer) TransactionOffsets() (driver.GroupMetadata, map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	const op = "consumer: TransactionOffsets"
	if c.closed.Load() {
		return driver.GroupMetadata{}, nil, polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	gm, ok := c.d.(driver.GroupMember)
	if !ok {
		return driver.GroupMetadata{}, nil, polykafka.NewError(polykafka.Unimplemented, op, "backend cannot report its group metadata", nil)
	}
	md, ok := gm.GroupMetadata()
	if !ok {
		return driver.GroupMetadata{}, nil, polykafka.NewError(polykafka.Rebalancing, op, "the member has no generation", nil)
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	c.commitMu.Lock() // guards ps.committed
	defer c.commitMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, ps := range c.parts {
		if p := ps.processed.Load(); p > ps.committed {
			out[tp] = polykafka.CommittedOffset{Offset: p, Metadata: offsetstore.EncodeMetadata(ps.baseline)}
		}
	}
	return md, out, nil
}

// commitProcessed stores the processed offset of every partition in only
// (all assigned partitions if only is nil) that moved since its last commit.
func (c *Consumer) commitProcessed(ctx context.Context, only []polykafka.TopicPartition) error {
	if c.s.Commit == CommitTransactional {
		return nil
	}
	offsets, took, err := c.commitLocked(ctx, only)
	if offsets != nil {
		c.eachHook(func(h any) {
			if h, ok := h.(HookCommit); ok {
				h.OnCommit(offsets, err)
			}
			if h, ok := h.(HookCommitted); ok {
				h.OnCommitted(CommitResult{Offsets: offsets, Duration: took, Err: err})
			}
		})
	}
	return err
}

// commitLocked does commitProcessed's work under commitMu and returns what
// it tried to commit (nil if nothing) and how long the store took, so that
// hooks run without the lock.
func (c *Consumer) commitLocked(ctx context.Context, only []polykafka.TopicPartition) (map[polykafka.TopicPartition]int64, time.Duration, error) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()

	c.mu.Lock()
	var states []*partState
	if only == nil {
		for _, ps := range c.parts {
			states = append(states, ps)
		}
	} else {
		for _, tp := range only {
			if ps := c.parts[tp]; ps != nil {
				states = append(states, ps)
			}
		}
	}
	c.mu.Unlock()

	save := make(map[polykafka.TopicPartition]offsetstore.Position)
	offsets := make(map[polykafka.TopicPartition]int64)
	pending := make(map[*partState]int64)
	for _, ps := range states {
		if ps.gone.Load() {
			continue
		}
		if p := ps.processed.Load(); p > ps.committed {
			save[ps.tp] = offsetstore.Position{Offset: p, Baseline: ps.baseline}
			offsets[ps.tp] = p
			pending[ps] = p
		}
	}
	if len(save) == 0 {
		return nil, 0, nil
	}
	// Lost cancels a commit in flight (see Lost).
	// Registering the cancel and dropping partitions lost meanwhile happen
	// under c.mu, as Lost's forget does: either Lost sees the cancel, or
	// this sees the partitions gone.
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.saveCancel = cancel
	for ps := range pending {
		if ps.gone.Load() {
			delete(pending, ps)
			delete(save, ps.tp)
			delete(offsets, ps.tp)
		}
	}
	c.mu.Unlock()
	if len(save) == 0 {
		cancel()
		return nil, 0, nil
	}
	began := time.Now()
	// A transient failure (Unavailable: the coordinator not available or
	// moved, a request timeout) is retried here, the same on every backend,
	// with the same offsets: a commit is idempotent.
	err := c.retry(ctx, func() error { return c.store.Save(ctx, c.group, save) })
	took := time.Since(began)
	// Read before cancel below: only a cancel by Lost makes the commit
	// "lost"; any other failure keeps the store's classification.
	lost := parent.Err() == nil && ctx.Err() != nil
	c.mu.Lock()
	c.saveCancel = nil
	c.mu.Unlock()
	cancel()
	if err == nil {
		for ps, p := range pending {
			ps.committed = p
		}
	} else if lost {
		err = polykafka.NewError(polykafka.Rebalancing, "consumer: commit", "partitions were lost while the commit was in flight", nil)
	} else if errors.Is(parent.Err(), context.DeadlineExceeded) {
		err = errs.Deadline("consumer: commit", "the store did not answer before the deadline", parent.Err(), err)
	} else {
		err = c.wrap("consumer: commit", err)
	}
	return offsets, took, err
}

// commitLoop commits processed offsets every CommitInterval until ctx is
// done. A failed commit is logged and retried at the next tick.
func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.s.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, c.s.CommitInterval+10*time.Second)
		if err := c.commitProcessed(cctx, nil); err != nil && ctx.Err() == nil {
			c.s.Logger.Warn("polykafka: periodic commit failed; retrying at the next tick", "group", c.group, "err", err)
		}
		cancel()
	}
}
