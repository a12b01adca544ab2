package franz

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

type consumer struct {
	cl    *kgo.Client
	adm   *kadm.Client
	h     driver.GroupHandler
	group string
	log   interface{ Warn(string, ...any) }
	bal   *balancer

	mu        sync.Mutex
	pending   map[polykafka.TopicPartition]int64 // Assigned's offsets, until AdjustFetchOffsetsFn applies them
	failed    map[polykafka.TopicPartition]bool  // Assigned failed: never fetched
	assignErr error                              // reported by the next Fetch
	retries   int                                // consecutive retryable Assigned failures
}

var (
	_ driver.Consumer = (*consumer)(nil)
	_ driver.Pauser   = (*consumer)(nil)
)

// OpenConsumer implements driver.Backend.
func (b *Backend) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	c := &consumer{
		h:       cfg.Handler,
		group:   cfg.Group,
		log:     cfg.Logger,
		pending: make(map[polykafka.TopicPartition]int64),
		failed:  make(map[polykafka.TopicPartition]bool),
	}
	c.bal = newBalancer(cfg.Logger)
	opts := make([]kgo.Opt, 0, len(b.opts)+12)
	opts = append(opts, kgo.WithLogger(slogLogger{cfg.Logger}))
	opts = append(opts, b.opts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.Balancers(c.bal),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.AdjustFetchOffsetsFn(c.adjust),
		// Only reached if a fetch runs out of range mid-stream; every
		// assigned partition starts at the portable layer's offset.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, "franz: OpenConsumer", "", err)
	}
	c.cl = cl
	c.adm = kadm.NewClient(cl)
	c.bal.cl.Store(cl)
	return c, nil
}

func toTPs(m map[string][]int32) []polykafka.TopicPartition {
	var out []polykafka.TopicPartition
	for t, ps := range m {
		for _, p := range ps {
			out = append(out, polykafka.TopicPartition{Topic: t, Partition: p})
		}
	}
	return out
}

func (c *consumer) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	tps := toTPs(assigned)
	offs, err := c.h.Assigned(ctx, tps)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		for _, tp := range tps {
			c.failed[tp] = true
		}
		if polykafka.IsRetryable(err) {
			// Transient: rebalance again rather than stop the consumer;
			// the new assignment calls Assigned again. Back off when it
			// keeps failing, since each retry rebalances the whole group.
			c.retries++
			wait := min(time.Duration(1<<min(c.retries, 6))*250*time.Millisecond, 15*time.Second)
			c.log.Warn("polykafka: franz: start decision failed; rebalancing to retry", "err", err, "in", wait)
			go func() {
				select {
				case <-time.After(wait):
					c.cl.ForceRebalance()
				case <-ctx.Done(): // the client is closing
				}
			}()
			return
		}
		if c.assignErr == nil {
			c.assignErr = err
		}
		return
	}
	c.retries = 0
	for _, tp := range tps {
		off, ok := offs[tp]
		if !ok {
			c.failed[tp] = true
			if c.assignErr == nil {
				c.assignErr = fmt.Errorf("franz: no start offset for assigned partition %s", tp)
			}
			continue
		}
		c.pending[tp] = off
		delete(c.failed, tp)
	}
}

// adjust replaces the offsets kgo fetched (or reset) with the ones the
// portable layer decided, and drops partitions it could not decide so
// that they are never fetched.
func (c *consumer) adjust(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range offsets {
		for p := range ps {
			tp := polykafka.TopicPartition{Topic: t, Partition: p}
			if off, ok := c.pending[tp]; ok {
				ps[p] = kgo.NewOffset().At(off).WithEpoch(-1)
				delete(c.pending, tp)
				continue
			}
			// Not decided (Assigned failed, or kgo assigned something
			// the handler never saw): never start it on kgo's own reset
			// policy.
			delete(ps, p)
			if !c.failed[tp] && c.assignErr == nil {
				c.assignErr = fmt.Errorf("franz: partition %s assigned without a start decision", tp)
			}
		}
	}
	return offsets, nil
}

func (c *consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	tps := toTPs(revoked)
	c.forget(tps)
	c.h.Revoked(ctx, tps)
}

func (c *consumer) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	tps := toTPs(lost)
	c.forget(tps)
	c.h.Lost(ctx, tps)
}

func (c *consumer) forget(tps []polykafka.TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		delete(c.pending, tp)
		delete(c.failed, tp)
	}
}

// Fetch implements driver.Consumer.
func (c *consumer) Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error) {
	if err := c.takeAssignErr(); err != nil {
		return nil, err
	}
	fs := c.cl.PollRecords(ctx, max)
	if fs.IsClientClosed() {
		return nil, kgo.ErrClientClosed
	}
	var firstErr error
	fs.EachError(func(t string, p int32, err error) {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		case errorCode(err) == polykafka.PermissionDenied || errorCode(err) == polykafka.Unimplemented:
			// kgo retries everything else itself (leader moves, group
			// session errors, data loss notices); these it cannot fix.
			err = fmt.Errorf("fetch %s/%d: %w", t, p, err)
		default:
			c.log.Warn("polykafka: franz fetch error", "topic", t, "partition", p, "err", err)
			return
		}
		if firstErr == nil {
			firstErr = err
		}
	})
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) && !errors.Is(firstErr, context.DeadlineExceeded) {
		return nil, firstErr
	}
	if err := c.takeAssignErr(); err != nil {
		return nil, err
	}
	n := fs.NumRecords()
	if n == 0 {
		return nil, firstErr
	}
	out := buf[:0]
	if cap(out) < n {
		out = make([]polykafka.Record, 0, n)
	}
	out = out[:n]
	i := 0
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			out[i] = polykafka.Record{
				Topic:     r.Topic,
				Partition: r.Partition,
				Offset:    r.Offset,
				Key:       r.Key,
				Value:     r.Value,
				Headers:   fromKgoHeaders(r.Headers),
				Timestamp: r.Timestamp,
				Native:    r,
			}
			i++
		}
	})
	return out[:i], nil
}

func (c *consumer) takeAssignErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.assignErr
	c.assignErr = nil
	return err
}

func fromKgoHeaders(hs []kgo.RecordHeader) []polykafka.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]polykafka.Header, len(hs))
	for i, h := range hs {
		out[i] = polykafka.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

// Commit implements driver.Consumer. kgo's commit API has no metadata, so
// the metadata strings are set on the request through PreCommitFnContext;
// the commit still goes through kgo's group machinery (generation, member,
// ordering behind earlier commits).
func (c *consumer) Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	uncommitted := make(map[string]map[int32]kgo.EpochOffset)
	for tp, o := range offsets {
		m := uncommitted[tp.Topic]
		if m == nil {
			m = make(map[int32]kgo.EpochOffset)
			uncommitted[tp.Topic] = m
		}
		m[tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
	}
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				p := &t.Partitions[j]
				if o, ok := offsets[polykafka.TopicPartition{Topic: t.Topic, Partition: p.Partition}]; ok {
					meta := o.Metadata
					p.Metadata = &meta
				}
			}
		}
		return nil
	})
	var rerr error
	c.cl.CommitOffsetsSync(ctx, uncommitted, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && rerr == nil {
					rerr = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, perr)
				}
			}
		}
	})
	return rerr
}

// Committed implements driver.Consumer.
func (c *consumer) Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	resps, err := c.adm.FetchOffsets(ctx, c.group)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	for t, ps := range resps {
		if !want[t] {
			continue
		}
		for p, r := range ps {
			if r.Err != nil {
				return nil, r.Err
			}
			if r.At < 0 {
				continue
			}
			out[polykafka.TopicPartition{Topic: t, Partition: p}] = polykafka.CommittedOffset{Offset: r.At, Metadata: r.Metadata}
		}
	}
	return out, nil
}

// ListOffsets implements driver.Consumer.
func (c *consumer) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	var topics []string
	seen := make(map[string]bool)
	for _, tp := range tps {
		if !seen[tp.Topic] {
			seen[tp.Topic] = true
			topics = append(topics, tp.Topic)
		}
	}
	var listed kadm.ListedOffsets
	var err error
	switch {
	case at == polykafka.OffsetEarliest:
		listed, err = c.adm.ListStartOffsets(ctx, topics...)
	case at == polykafka.OffsetLatest:
		listed, err = c.adm.ListEndOffsets(ctx, topics...)
	case at >= 0:
		listed, err = c.adm.ListOffsetsAfterMilli(ctx, at, topics...)
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, "franz: ListOffsets", fmt.Sprintf("at %d is neither a special offset nor a timestamp", at), nil)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[polykafka.TopicPartition]int64, len(tps))
	for _, tp := range tps {
		lo, ok := listed.Lookup(tp.Topic, tp.Partition)
		if !ok {
			return nil, fmt.Errorf("franz: no listed offset for %s: %w", tp, kerr.UnknownTopicOrPartition)
		}
		if lo.Err != nil {
			return nil, fmt.Errorf("franz: list offsets of %s: %w", tp, lo.Err)
		}
		out[tp] = lo.Offset
	}
	return out, nil
}

// PartitionCounts implements driver.Consumer. kadm's Metadata answers from
// a cache up to MetadataMinAge (5s) old; RequestCachedMetadata with a 1ns
// limit sends a real request and refreshes that cache, so the kadm calls
// that follow (ListOffsets in the start decision) see the same partitions.
func (c *consumer) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := c.cl.RequestCachedMetadata(ctx, req, time.Nanosecond)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int32, len(topics))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("topic %q: %w", *t.Topic, err)
		}
		out[*t.Topic] = int32(len(t.Partitions))
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("topic %q: %w", t, kerr.UnknownTopicOrPartition)
		}
	}
	return out, nil
}

// Rejoin implements driver.Consumer.
func (c *consumer) Rejoin(_ context.Context, counts map[string]int32) error {
	c.bal.setCounts(counts)
	c.cl.ForceMetadataRefresh()
	c.cl.ForceRebalance()
	return nil
}

// Pause implements driver.Pauser.
func (c *consumer) Pause(_ context.Context, tps []polykafka.TopicPartition) error {
	c.cl.PauseFetchPartitions(byTopic(tps))
	return nil
}

// Resume implements driver.Pauser.
func (c *consumer) Resume(_ context.Context, tps []polykafka.TopicPartition) error {
	c.cl.ResumeFetchPartitions(byTopic(tps))
	return nil
}

func byTopic(tps []polykafka.TopicPartition) map[string][]int32 {
	m := make(map[string][]int32)
	for _, tp := range tps {
		m[tp.Topic] = append(m[tp.Topic], tp.Partition)
	}
	return m
}

// Close implements driver.Consumer: leaving the group revokes every owned
// partition (the handler commits them), then the client is closed.
func (c *consumer) Close(ctx context.Context) error {
	err := c.cl.LeaveGroupContext(ctx)
	c.cl.Close()
	if errors.Is(err, kgo.ErrClientClosed) {
		err = nil
	}
	return err
}

// As implements driver.Consumer.
func (c *consumer) As(target any) bool {
	if p, ok := target.(**kgo.Client); ok && p != nil {
		*p = c.cl
		return true
	}
	return false
}

// ErrorCode implements driver.Consumer.
func (*consumer) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }
