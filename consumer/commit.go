package consumer

import (
	"context"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/offsetstore"
)

// Mark records rs as processed: at the next commit, each record's partition
// commits the offset after it, if that is beyond what is committed. Run and
// RunBatch mark records themselves when the handler returns nil; callers of
// Poll call Mark. Records of partitions no longer assigned are ignored.
//
// Marking a record implies that every earlier record of its partition was
// processed: mark in order.
func (c *Consumer) Mark(rs ...*polykafka.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		if r == nil {
			continue
		}
		ps := c.parts[r.TopicPartition()]
		if ps == nil || r.Offset < ps.start {
			continue
		}
		if next := r.Offset + 1; next > ps.processed.Load() {
			ps.processed.Store(next)
		}
	}
}

// Commit synchronously commits the offsets of processed (marked) records.
// It is the way to commit with CommitManual, and may be called in any mode.
func (c *Consumer) Commit(ctx context.Context) error {
	if c.closed.Load() {
		return polykafka.NewError(polykafka.Closed, "consumer: Commit", "", nil)
	}
	return c.commitProcessed(ctx, nil)
}

// commitProcessed stores the processed offset of every partition in only
// (all assigned partitions if only is nil) that moved since its last commit.
func (c *Consumer) commitProcessed(ctx context.Context, only []polykafka.TopicPartition) error {
	offsets, err := c.commitLocked(ctx, only)
	if offsets != nil {
		c.eachHook(func(h any) {
			if h, ok := h.(HookCommit); ok {
				h.OnCommit(offsets, err)
			}
		})
	}
	return err
}

// commitLocked does commitProcessed's work under commitMu and returns what
// it tried to commit (nil if nothing), so that hooks run without the lock.
func (c *Consumer) commitLocked(ctx context.Context, only []polykafka.TopicPartition) (map[polykafka.TopicPartition]int64, error) {
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
		if p := ps.processed.Load(); p > ps.committed {
			save[ps.tp] = offsetstore.Position{Offset: p, Baseline: ps.baseline}
			offsets[ps.tp] = p
			pending[ps] = p
		}
	}
	if len(save) == 0 {
		return nil, nil
	}
	err := c.store.Save(ctx, c.group, save)
	if err == nil {
		for ps, p := range pending {
			ps.committed = p
		}
	} else {
		err = c.wrap("consumer: commit", err)
	}
	return offsets, err
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
