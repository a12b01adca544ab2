package consumer

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/backoff"
	"github.com/polykafka/polykafka/offsetstore"
)

// assignTimeout bounds one start decision (reads, retries and the commit):
// well under the default rebalance timeout (60s), so that a member stuck on
// an unavailable broker is not expelled from the group for it.
const assignTimeout = 30 * time.Second

// Backoff of the rebalance that retries a start decision refused for a
// transient reason: each retry rebalances the whole group, so it waits
// longer after each consecutive failure.
var assignRetry = backoff.Schedule{Min: 250 * time.Millisecond, Max: 15 * time.Second}

// groupHandler is the Consumer as the driver sees it: a separate method set
// so that Assigned, Revoked and Lost are not part of the Consumer's API.
type groupHandler Consumer

// Assigned implements driver.GroupHandler: it decides where each of tps
// starts, stores the decisions that are not plain resumes, and only then
// lets the driver fetch. If it cannot, the driver leaves tps idle; for a
// transient failure the consumer makes the group rebalance again after a
// backoff, otherwise it stops.
func (h *groupHandler) Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	c := (*Consumer)(h)
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err() // the generation ended before New finished: decided in the next
	}
	if c.newErr != nil {
		return nil, c.newErr
	}
	out, err := c.assign(ctx, tps)
	if err != nil {
		if ctx.Err() != nil && c.bg.Err() == nil {
			// The driver's context ended with its generation (another
			// member joined or left): the decision is not a failure, and
			// the next generation asks for it again.
			c.s.Logger.Info("polykafka: start decision interrupted by a rebalance; deciding again in the next generation",
				"group", c.group, "err", err)
			return nil, err
		}
		c.assignFailed(err)
		return nil, err
	}
	c.mu.Lock()
	c.assignFails = 0
	c.mu.Unlock()
	return out, nil
}

// assignFailed applies the policy for a start decision that failed: a
// transient failure (IsRetryable) rebalances again after a backoff, so that
// Assigned runs again; any other stops the consumer with the error.
func (c *Consumer) assignFailed(err error) {
	if c.bg.Err() != nil {
		return // closing
	}
	if !polykafka.IsRetryable(err) {
		c.s.Logger.Error("polykafka: start decision failed; stopping the consumer", "group", c.group, "err", err)
		c.stopWith(err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.assignFails++
	wait := assignRetry.Delay(c.assignFails)
	c.s.Logger.Warn("polykafka: start decision failed; rebalancing to retry", "group", c.group, "err", err, "in", wait, "attempt", c.assignFails)
	if c.rejoinTimer != nil {
		c.rejoinTimer.Stop()
	}
	c.rejoinTimer = time.AfterFunc(wait, func() {
		if c.bg.Err() != nil {
			return
		}
		if err := c.d.Rejoin(c.bg, nil); err != nil && c.bg.Err() == nil {
			c.s.Logger.Warn("polykafka: rejoin to retry a start decision failed", "group", c.group, "err", err)
		}
	})
}

// assign decides, stores and records the start of tps.
func (c *Consumer) assign(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	const op = "consumer: assign"
	// Bounded, and cut short by Close: the backend's context lives as long
	// as its client, and a slow decision holds up the whole group.
	ctx, cancel := context.WithTimeout(ctx, assignTimeout)
	defer cancel()
	defer context.AfterFunc(c.bg, cancel)()
	if len(tps) == 0 {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil
	}
	byTopic := make(map[string][]int32)
	for _, tp := range tps {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}

	var decisions []discovery.Decision
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		ps := byTopic[topic]
		slices.Sort(ps)
		ds, err := c.decide(ctx, topic, ps, nil)
		if err != nil {
			c.s.Logger.Error("polykafka: cannot decide start offsets", "group", c.group, "topic", topic, "partitions", ps, "err", err)
			return nil, err
		}
		decisions = append(decisions, ds...)
	}

	// Commit-on-assign: the decisions are durable before any record of
	// these partitions can be handed out.
	if err := c.saveDecisions(ctx, decisions); err != nil {
		err = c.wrap(op, err)
		c.s.Logger.Error("polykafka: cannot store start decisions", "group", c.group, "err", err)
		return nil, err
	}

	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset, len(decisions))
	c.mu.Lock()
	for _, d := range decisions {
		ps := &partState{tp: d.TopicPartition, baseline: d.Baseline, committed: d.Offset}
		if !d.NeedsCommit() {
			ps.committed = d.Stored
		}
		ps.start.Store(d.Offset)
		ps.processed.Store(d.Offset)
		if old := c.parts[d.TopicPartition]; old != nil {
			old.gone.Store(true)
			if tr := c.pollTracks[old]; tr != nil {
				c.pollHeld -= tr.open
				delete(c.pollTracks, old)
			}
		}
		c.parts[d.TopicPartition] = ps
		out[d.TopicPartition] = polykafka.CommittedOffset{Offset: d.Offset, Metadata: offsetstore.EncodeMetadata(d.Baseline)}
	}
	close(c.assignedCh)
	c.assignedCh = make(chan struct{})
	c.mu.Unlock()

	c.reportDecisions(decisions)
	c.eachHook(func(h any) {
		if h, ok := h.(HookAssigned); ok {
			h.OnPartitionsAssigned(ctx, slices.Clone(tps))
		}
	})
	return out, nil
}

// saveDecisions stores the decisions that are not plain resumes.
func (c *Consumer) saveDecisions(ctx context.Context, decisions []discovery.Decision) error {
	save := make(map[polykafka.TopicPartition]offsetstore.Position)
	for _, d := range decisions {
		if d.NeedsCommit() {
			save[d.TopicPartition] = offsetstore.Position{Offset: d.Offset, Baseline: d.Baseline}
		}
	}
	if len(save) == 0 {
		return nil
	}
	return c.retry(ctx, func() error { return c.store.Save(ctx, c.group, save) })
}

// reportDecisions logs each decision and passes it to HookStartDecision.
func (c *Consumer) reportDecisions(decisions []discovery.Decision) {
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
}

// decide gathers the inputs of discovery.Decide for partitions ps of topic.
// override replaces stored positions (the fetch position of a partition
// that ran out of range).
func (c *Consumer) decide(ctx context.Context, topic string, ps []int32, override map[int32]offsetstore.Position) ([]discovery.Decision, error) {
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
		for p, pos := range override {
			in.Positions[p] = pos
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

// Revoked implements driver.GroupHandler: it lets HookRevoking finish
// work on tps, commits what was processed in tps and forgets them. A failed commit loses nothing: the next owner
// re-reads from the last commit (drivers that cannot tell a lost
// assignment from a revoked one call Revoked, and this commit then fails).
func (h *groupHandler) Revoked(ctx context.Context, tps []polykafka.TopicPartition) {
	c := (*Consumer)(h)
	if e := c.eng.Load(); e != nil {
		// Handlers in flight on tps finish (bounded) before the commit.
		e.drain(tps, c.s.CloseTimeout)
	}
	cctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	c.eachHook(func(h any) {
		if h, ok := h.(HookRevoking); ok {
			h.OnPartitionsRevoking(cctx, slices.Clone(tps))
		}
	})
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
	// Forget tps and cancel a commit in flight, then wait for it to
	// return: a commit that gathered these partitions must not go out in
	// the next generation, over the new owner's commits. Cancelling (not
	// waiting out the commit's own deadline) keeps the rebalance from
	// waiting on a commit the user gave a long deadline. Handlers in
	// flight on tps have their contexts cancelled; nothing they finish is
	// committed.
	if e := c.eng.Load(); e != nil {
		e.lose(tps)
	}
	c.forget(tps)
	c.mu.Lock()
	if c.saveCancel != nil {
		c.saveCancel()
	}
	c.mu.Unlock()
	c.commitMu.Lock()
	//lint:ignore SA2001 an empty critical section: waits for the commit in flight to return
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
			if tr := c.pollTracks[ps]; tr != nil {
				c.pollHeld -= tr.open
				delete(c.pollTracks, ps)
			}
		}
		delete(c.userPaused, tp)
	}
	c.signalPollRoom()
}

// outOfRange applies Options.OutOfRange to partitions whose fetch position
// is no longer in the log (deleted by retention or DeleteRecords while the
// consumer ran): it decides where each starts as at assignment, stores the
// decision, then moves the fetch there (Seek) or, if the backend cannot
// seek, makes the group rebalance so that Assigned starts it at the stored
// decision. It returns an error only when the consumer must stop.
func (c *Consumer) outOfRange(ctx context.Context, tps []polykafka.TopicPartition) error {
	const op = "consumer: out of range"
	byTopic := make(map[string][]*partState)
	c.mu.Lock()
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], ps)
		}
	}
	c.mu.Unlock()
	seek := make(map[polykafka.TopicPartition]int64)
	var decisions []discovery.Decision
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		states := byTopic[topic]
		ps := make([]int32, len(states))
		override := make(map[int32]offsetstore.Position, len(states))
		for i, st := range states {
			ps[i] = st.tp.Partition
			override[st.tp.Partition] = offsetstore.Position{Offset: st.processed.Load(), Baseline: st.baseline}
		}
		ds, err := c.decide(ctx, topic, ps, override)
		if err != nil {
			if polykafka.IsRetryable(err) {
				c.s.Logger.Warn("polykafka: cannot decide where out-of-range partitions go on; rebalancing to retry", "group", c.group, "err", err)
				c.assignFailed(err)
				return nil
			}
			return c.wrap(op, err)
		}
		// A commit in flight holds commitMu across its Save, with the
		// processed position it read before this decision. Moving the
		// position only once it has returned keeps that older Save from
		// landing after the decision's and putting the store back before
		// the log start (which the next assignment would then decide
		// again, at a later end of the log: records lost). A commit that
		// starts after this reads the decided position.
		c.commitMu.Lock()
		for i, d := range ds {
			st := states[i]
			st.start.Store(d.Offset)
			st.processed.Store(d.Offset)
			seek[d.TopicPartition] = d.Offset
			decisions = append(decisions, d)
		}
		c.commitMu.Unlock()
	}
	if len(decisions) == 0 {
		return nil
	}
	if err := c.saveDecisions(ctx, decisions); err != nil {
		if polykafka.IsRetryable(c.wrap(op, err)) {
			c.assignFailed(c.wrap(op, err))
			return nil
		}
		return c.wrap(op, err)
	}
	c.commitMu.Lock()
	for _, d := range decisions {
		c.mu.Lock()
		if ps := c.parts[d.TopicPartition]; ps != nil {
			ps.committed = d.Offset
		}
		c.mu.Unlock()
	}
	c.commitMu.Unlock()
	c.reportDecisions(decisions)
	if sk, ok := c.d.(driver.Seeker); ok {
		if err := sk.Seek(ctx, seek); err != nil {
			return c.wrap(op, err)
		}
		return nil
	}
	if err := c.d.Rejoin(ctx, nil); err != nil && ctx.Err() == nil {
		c.s.Logger.Warn("polykafka: rejoin after out-of-range failed", "group", c.group, "err", err)
	}
	return nil
}
