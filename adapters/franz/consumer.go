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
	bal   *balancer

	mu      sync.Mutex
	pending map[polykafka.TopicPartition]int64 // Assigned's offsets, until AdjustFetchOffsetsFn applies them
	stopped map[polykafka.TopicPartition]bool  // reported out of range: not fetched until Seek
}

var (
	_ driver.Consumer    = (*consumer)(nil)
	_ driver.Pauser      = (*consumer)(nil)
	_ driver.Seeker      = (*consumer)(nil)
	_ driver.GroupMember = (*consumer)(nil)
)

// OpenConsumer implements driver.Backend.
func (b *Backend) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	const op = "franz: OpenConsumer"
	base, err := b.clientOpts(false)
	if err != nil {
		return nil, err
	}
	c := &consumer{
		h:       cfg.Handler,
		group:   cfg.Group,
		pending: make(map[polykafka.TopicPartition]int64),
		stopped: make(map[polykafka.TopicPartition]bool),
	}
	c.bal = newBalancer(cfg.Logger)
	isolation := kgo.ReadUncommitted()
	if cfg.ReadCommitted {
		isolation = kgo.ReadCommitted()
	}
	opts := make([]kgo.Opt, 0, len(base)+12)
	opts = append(opts, kgo.WithLogger(slogLogger{cfg.Logger}))
	opts = append(opts, base...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.Balancers(c.bal),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.AdjustFetchOffsetsFn(c.adjust),
		kgo.FetchIsolationLevel(isolation),
		// An out-of-range fetch is reported (Fetch returns it) and the
		// partition stops until Seek: the portable layer applies its
		// OutOfRange policy. Every assigned partition starts at the
		// portable layer's offset, so this is only reached mid-stream.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
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

// onAssigned asks the portable layer where the partitions start. If it
// fails, nothing is recorded and adjust drops the partitions from the
// fetch; the portable layer decides whether to rebalance again.
func (c *consumer) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	tps := toTPs(assigned)
	offs, err := c.h.Assigned(ctx, tps)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if o, ok := offs[tp]; ok {
			c.pending[tp] = o.Offset
			delete(c.stopped, tp)
		}
	}
}

// adjust replaces the offsets kgo fetched (or reset) with the ones the
// portable layer decided, and drops partitions it did not decide so that
// they are never fetched.
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
			delete(ps, p)
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
		delete(c.stopped, tp)
	}
}

// Fetch implements driver.Consumer: records of every partition kgo
// returned, and every error, per partition, for the portable layer to
// classify.
func (c *consumer) Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error) {
	fs := c.cl.PollRecords(ctx, max)
	if fs.IsClientClosed() {
		return nil, kgo.ErrClientClosed
	}
	var errs []error
	fs.EachError(func(t string, p int32, err error) {
		if t == "" {
			errs = append(errs, err) // not about one partition (a context error, the client)
			return
		}
		tp := polykafka.TopicPartition{Topic: t, Partition: p}
		if errors.Is(err, kerr.OffsetOutOfRange) {
			c.mu.Lock()
			already := c.stopped[tp]
			c.stopped[tp] = true
			c.mu.Unlock()
			if already {
				return // reported once; stopped until Seek
			}
		}
		errs = append(errs, &driver.PartitionError{TopicPartition: tp, Err: err})
	})
	n := fs.NumRecords()
	var out []polykafka.Record
	if n > 0 {
		out = buf[:0]
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
		out = out[:i]
	}
	return out, errors.Join(errs...)
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

// Seek implements driver.Seeker with kgo's SetOffsets, which also restarts
// a partition stopped by an out-of-range fetch.
func (c *consumer) Seek(_ context.Context, offsets map[polykafka.TopicPartition]int64) error {
	set := make(map[string]map[int32]kgo.EpochOffset)
	c.mu.Lock()
	for tp, off := range offsets {
		if set[tp.Topic] == nil {
			set[tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		set[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
		delete(c.stopped, tp)
	}
	c.mu.Unlock()
	c.cl.SetOffsets(set)
	return nil
}

// GroupMetadata implements driver.GroupMember.
func (c *consumer) GroupMetadata() (driver.GroupMetadata, bool) {
	member, gen := c.cl.GroupMetadata()
	if member == "" || gen < 0 {
		return driver.GroupMetadata{}, false
	}
	return driver.GroupMetadata{Group: c.group, Generation: gen, MemberID: member}, true
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
	return committed(ctx, c.adm, c.group, topics)
}

// committed returns group's commits in topics with kadm's FetchOffsets.
func committed(ctx context.Context, adm *kadm.Client, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	resps, err := adm.FetchOffsets(ctx, group)
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
	return listOffsets(ctx, c.adm, tps, at)
}

// listOffsets resolves at for each of tps with kadm's ListOffsets calls.
func listOffsets(ctx context.Context, adm *kadm.Client, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
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
		listed, err = adm.ListStartOffsets(ctx, topics...)
	case at == polykafka.OffsetLatest:
		listed, err = adm.ListEndOffsets(ctx, topics...)
	case at >= 0:
		listed, err = adm.ListOffsetsAfterMilli(ctx, at, topics...)
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

// PartitionCounts implements driver.Consumer.
func (c *consumer) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	return partitionCounts(ctx, c.cl, topics)
}

// partitionCounts reads partition counts with a real Metadata request.
// kadm's Metadata answers from a cache up to MetadataMinAge (5s) old;
// RequestCachedMetadata with a 1ns limit sends a real request and
// refreshes that cache, so the kadm calls that follow (ListOffsets in the
// start decision) see the same partitions.
func partitionCounts(ctx context.Context, cl *kgo.Client, topics []string) (map[string]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := cl.RequestCachedMetadata(ctx, req, time.Nanosecond)
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

// Rejoin implements driver.Consumer. For growth, the counts go into the
// join user data, so that even a non-leader's rejoin rebalances, and kgo
// refreshes its metadata. A leader whose metadata shows new partitions
// rejoins by itself (kgo's findNewAssignments), so on the leader a forced
// rebalance would add a second one for the same growth: it is forced only
// on a non-leader, or for a retry (nil counts), when nothing grew.
func (c *consumer) Rejoin(_ context.Context, counts map[string]int32) error {
	if counts == nil {
		c.cl.ForceRebalance()
		return nil
	}
	c.bal.setCounts(counts)
	c.cl.ForceMetadataRefresh()
	if !c.bal.leader.Load() {
		c.cl.ForceRebalance()
	}
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
