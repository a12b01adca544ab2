package consumer

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// assignTimeout bounds one start decision (reads, retries and the commit):
// well under the default rebalance timeout (60s), so that a member stuck on
// an unavailable broker is not expelled from the group for it.
const assignTimeout = 30 * time.Second

// groupHandler is the Consumer as the driver sees it: a separate method set
// so that Assigned, Revoked and Lost are not part of the Consumer's API.
type groupHandler Consumer

// Assigned implements driver.GroupHandler: it decides where each of tps
// starts, stores the decisions that are not plain resumes, and only then
// lets the driver fetch.
func (h *groupHandler) Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]int64, error) {
	c := (*Consumer)(h)
	const op = "consumer: assign"
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.newErr != nil {
		return nil, c.newErr
	}
	// Bounded, and cut short by Close: the backend's context lives as long
	// as its client, and a slow decision holds up the whole group.
	ctx, cancel := context.WithTimeout(ctx, assignTimeout)
	defer cancel()
	defer context.AfterFunc(c.bg, cancel)()
	if len(tps) == 0 {
		return map[polykafka.TopicPartition]int64{}, nil
	}
	byTopic := make(map[string][]int32)
	for _, tp := range tps {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}

	var decisions []discovery.Decision
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		ps := byTopic[topic]
		slices.Sort(ps)
		ds, err := c.decide(ctx, topic, ps)
		if err != nil {
			c.s.Logger.Error("polykafka: cannot decide start offsets", "group", c.group, "topic", topic, "partitions", ps, "err", err)
			return nil, err
		}
		decisions = append(decisions, ds...)
	}

	// Commit-on-assign: the decisions are durable before any record of
	// these partitions can be handed out.
	save := make(map[polykafka.TopicPartition]offsetstore.Position)
	for _, d := range decisions {
		if d.NeedsCommit() {
			save[d.TopicPartition] = offsetstore.Position{Offset: d.Offset, Baseline: d.Baseline}
		}
	}
	if len(save) > 0 {
		if err := c.retry(ctx, func() error { return c.store.Save(ctx, c.group, save) }); err != nil {
			err = c.wrap(op, err)
			c.s.Logger.Error("polykafka: cannot store start decisions", "group", c.group, "err", err)
			return nil, err
		}
	}

	out := make(map[polykafka.TopicPartition]int64, len(decisions))
	c.mu.Lock()
	for _, d := range decisions {
		ps := &partState{tp: d.TopicPartition, start: d.Offset, baseline: d.Baseline, committed: d.Offset}
		if !d.NeedsCommit() {
			ps.committed = d.Stored
		}
		ps.processed.Store(d.Offset)
		if old := c.parts[d.TopicPartition]; old != nil {
			old.gone.Store(true)
		}
		c.parts[d.TopicPartition] = ps
		out[d.TopicPartition] = d.Offset
	}
	c.mu.Unlock()

	for _, d := range decisions {
		c.s.Logger.Info("polykafka: partition start decided",
			"group", c.group, "topic", d.Topic, "partition", d.Partition,
			"offset", d.Offset, "reason", string(d.Reason), "policy", d.Policy.String(), "stored", d.Stored)
		c.eachHook(func(h any) {
			if h, ok := h.(HookStartDecision); ok {
				h.OnStartDecision(d)
			}
		})
	}
	c.eachHook(func(h any) {
		if h, ok := h.(HookAssigned); ok {
			h.OnPartitionsAssigned(ctx, slices.Clone(tps))
		}
	})
	return out, nil
}

// decide gathers the inputs of discovery.Decide for partitions ps of topic.
func (c *Consumer) decide(ctx context.Context, topic string, ps []int32) ([]discovery.Decision, error) {
	const op = "consumer: assign"
	tps := make([]polykafka.TopicPartition, len(ps))
	for i, p := range ps {
		tps[i] = polykafka.TopicPartition{Topic: topic, Partition: p}
	}
	in := discovery.Input{
		Topic:         topic,
		Partitions:    ps,
		Known:         c.known[topic],
		Initial:       c.s.Initial,
		NewPartitions: c.s.NewPartitions,
		OutOfRange:    c.s.OutOfRange,
	}
	err := c.retry(ctx, func() error {
		counts, err := c.d.PartitionCounts(ctx, []string{topic})
		if err != nil {
			return err
		}
		in.Count = counts[topic]
		if in.Positions, err = c.store.Load(ctx, c.group, topic); err != nil {
			return err
		}
		start, err := c.d.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
		if err != nil {
			return err
		}
		end, err := c.d.ListOffsets(ctx, tps, polykafka.OffsetLatest)
		if err != nil {
			return err
		}
		in.Start, in.End = byPartition(start), byPartition(end)
		in.Times = nil
		for _, ms := range discovery.TimesNeeded(c.s.Initial, c.s.NewPartitions, c.s.OutOfRange) {
			offs, err := c.d.ListOffsets(ctx, tps, ms)
			if err != nil {
				return err
			}
			if in.Times == nil {
				in.Times = make(map[int64]map[int32]int64)
			}
			in.Times[ms] = byPartition(offs)
		}
		return nil
	})
	if err != nil {
		return nil, c.wrap(op, err)
	}
	return discovery.Decide(in)
}

func byPartition(m map[polykafka.TopicPartition]int64) map[int32]int64 {
	out := make(map[int32]int64, len(m))
	for tp, o := range m {
		out[tp.Partition] = o
	}
	return out
}

// Revoked implements driver.GroupHandler: it commits what was processed in
// tps and forgets them.
func (h *groupHandler) Revoked(ctx context.Context, tps []polykafka.TopicPartition) {
	c := (*Consumer)(h)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.commitProcessed(cctx, tps); err != nil {
		c.s.Logger.Warn("polykafka: commit on revoke failed; the next owner re-reads from the last commit",
			"group", c.group, "err", err)
	}
	c.forget(tps)
	c.eachHook(func(h any) {
		if h, ok := h.(HookRevoked); ok {
			h.OnPartitionsRevoked(ctx, slices.Clone(tps))
		}
	})
}

// Lost implements driver.GroupHandler: it forgets tps without committing.
func (h *groupHandler) Lost(ctx context.Context, tps []polykafka.TopicPartition) {
	c := (*Consumer)(h)
	c.s.Logger.Warn("polykafka: partitions lost; uncommitted progress will be re-read", "group", c.group, "partitions", tps)
	// Under commitMu, so that a periodic commit that already gathered
	// these partitions finishes before they are forgotten, and none starts
	// with them afterwards (it would otherwise go out in the next
	// generation, over the new owner's commits).
	c.commitMu.Lock()
	c.forget(tps)
	c.commitMu.Unlock()
	c.eachHook(func(h any) {
		if h, ok := h.(HookLost); ok {
			h.OnPartitionsLost(ctx, slices.Clone(tps))
		}
	})
}

func (c *Consumer) forget(tps []polykafka.TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			ps.gone.Store(true)
			delete(c.parts, tp)
		}
	}
}
