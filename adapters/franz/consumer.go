package franz

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

type consumer struct {
	cluster
	b     *Backend
	h     driver.GroupHandler
	group string
	bal   *balancer // classic protocol only
	// joins: whether a JoinGroup or SyncGroup is in flight (leave.go).
	joins *joinWatch
	// stop cancels the client's base context (kgo.WithContext): it ends a
	// join or sync in flight when Close cannot wait for it.
	stop context.CancelFunc
	// stable: Committed asks for stable offsets (ReadCommitted, KIP-447).
	stable bool
	// kip848: the member runs KIP-848's consumer protocol
	// (ServerSideBalancer with kgo's own RangeBalancer).
	kip848 bool

	// hmu serializes the GroupHandler calls: kgo's callbacks, and under
	// KIP-848 the retry of a failed Assigned from Rejoin.
	hmu sync.Mutex

	mu      sync.Mutex
	pending map[polykafka.TopicPartition]int64 // Assigned's offsets, until AdjustFetchOffsetsFn applies them
	stopped map[polykafka.TopicPartition]bool  // reported out of range: not fetched until Seek
	// failed (KIP-848 only): partitions whose Assigned failed. They are
	// assigned to kgo paused, so that Rejoin(nil) can decide them again
	// and start them with SetOffsets: under KIP-848 there is no rebalance
	// that would assign them again while the member keeps them.
	failed map[polykafka.TopicPartition]bool
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
		b:       b,
		joins:   newJoinWatch(),
		h:       cfg.Handler,
		group:   cfg.Group,
		stable:  cfg.ReadCommitted,
		pending: make(map[polykafka.TopicPartition]int64),
		stopped: make(map[polykafka.TopicPartition]bool),
		failed:  make(map[polykafka.TopicPartition]bool),
		kip848:  cfg.GroupProtocol == driver.GroupProtocolConsumer,
	}
	// kgo runs KIP-848 only with its own RangeBalancer or StickyBalancer
	// first in Balancers (should848 checks the concrete type), so the
	// wrapped balancer, whose user data and leader metadata refresh exist
	// for the classic protocol only, is left out. kgo's range maps to the
	// coordinator's "range" assignor.
	balancers := kgo.Balancers(kgo.RangeBalancer())
	if !c.kip848 {
		c.bal = newBalancer(cfg.Logger)
		balancers = kgo.Balancers(c.bal)
	}
	isolation := kgo.ReadUncommitted()
	if cfg.ReadCommitted {
		isolation = kgo.ReadCommitted()
	}
	var cctx context.Context
	cctx, c.stop = context.WithCancel(context.Background())
	opts := make([]kgo.Opt, 0, len(base)+14)
	opts = append(opts, kgo.WithLogger(slogLogger{cfg.Logger}))
	opts = append(opts, base...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		balancers,
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
		kgo.WithHooks(c.joins),
		kgo.WithContext(cctx),
	)
	if c.kip848 {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.stop()
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	// Set before anything waits: kgo joins the group in the background
	// and its callbacks use them.
	c.cluster = newCluster(cl)
	if c.bal != nil {
		c.bal.cl.Store(cl)
	}
	if c.kip848 {
		if err := requireKIP848(ctx, cl); err != nil {
			cl.Close()
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// requireKIP848 fails with Unimplemented when the cluster does not serve
// ConsumerGroupHeartbeat v1 (KIP-848 as Kafka 4.0 ships it): kgo would fall
// back to the classic protocol silently. If the cluster does not answer,
// it returns nil and leaves the error to the first request of the
// portable layer, which bounds it.
func requireKIP848(ctx context.Context, cl *kgo.Client) error {
	// kgo's dial timeout is not cut short by ctx: bound the wait here.
	type answer struct {
		resp *kmsg.ApiVersionsResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
		done <- answer{resp, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		return nil
	}
	resp := a.resp
	if a.err != nil || resp.ErrorCode != 0 {
		return nil
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == kmsg.ConsumerGroupHeartbeat.Int16() && k.MaxVersion >= 1 {
			return nil
		}
	}
	return polykafka.NewError(polykafka.Unimplemented, "franz: OpenConsumer",
		"Options.GroupProtocol: consumer: the cluster does not serve ConsumerGroupHeartbeat v1 (KIP-848 needs Kafka 4.0+ with \"consumer\" in group.coordinator.rebalance.protocols)", nil)
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
//
// Under KIP-848 the partitions stay with the member, so they are paused
// and recorded instead: Rejoin(nil) decides them again.
func (c *consumer) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	tps := toTPs(assigned)
	if c.kip848 {
		// The coordinator assigns partitions added to a topic before
		// kgo's metadata shows them (kgo refreshes it every
		// MetadataMaxAge, 5 min by default), and kgo fetches only
		// partitions its metadata knows.
		cl.ForceMetadataRefresh()
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	offs, err := c.h.Assigned(ctx, tps)
	if err != nil {
		if c.kip848 {
			cl.PauseFetchPartitions(assigned)
			c.mu.Lock()
			for _, tp := range tps {
				c.failed[tp] = true
			}
			c.mu.Unlock()
		}
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
			if c.failed[tp] {
				// Paused until decided. An offset (not fetched) is
				// needed for SetOffsets to start it later: kgo sets
				// offsets only of partitions it consumes.
				ps[p] = kgo.NewOffset().At(0).WithEpoch(-1)
				continue
			}
			delete(ps, p)
		}
	}
	return offsets, nil
}

func (c *consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	tps := toTPs(revoked)
	if len(tps) == 0 {
		return // kgo's KIP-848 reconciliation may call it with nothing revoked
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.forget(tps)
	c.h.Revoked(ctx, tps)
}

func (c *consumer) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	tps := toTPs(lost)
	if len(tps) == 0 {
		return
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.forget(tps)
	c.h.Lost(ctx, tps)
}

func (c *consumer) forget(tps []polykafka.TopicPartition) {
	c.mu.Lock()
	var unpause []polykafka.TopicPartition
	for _, tp := range tps {
		delete(c.pending, tp)
		delete(c.stopped, tp)
		if c.failed[tp] {
			delete(c.failed, tp)
			unpause = append(unpause, tp)
		}
	}
	c.mu.Unlock()
	if len(unpause) > 0 {
		// kgo's pauses outlive an assignment: a partition assigned
		// again must not start paused.
		c.cl.ResumeFetchPartitions(byTopic(unpause))
	}
}

// retryFailed (KIP-848) asks the portable layer again where the partitions
// whose Assigned failed start, and starts those it decided.
func (c *consumer) retryFailed(ctx context.Context) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.mu.Lock()
	tps := make([]polykafka.TopicPartition, 0, len(c.failed))
	for tp := range c.failed {
		tps = append(tps, tp)
	}
	c.mu.Unlock()
	if len(tps) == 0 {
		return
	}
	offs, err := c.h.Assigned(ctx, tps)
	if err != nil {
		return // the portable layer calls Rejoin(nil) again when it wants to
	}
	set := make(map[string]map[int32]kgo.EpochOffset)
	var started []polykafka.TopicPartition
	c.mu.Lock()
	for _, tp := range tps {
		o, ok := offs[tp]
		if !ok {
			continue
		}
		if set[tp.Topic] == nil {
			set[tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		set[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
		// Also for AdjustFetchOffsetsFn, in case kgo has not fetched the
		// partition's offsets yet (SetOffsets skips it then).
		c.pending[tp] = o.Offset
		delete(c.failed, tp)
		delete(c.stopped, tp)
		started = append(started, tp)
	}
	c.mu.Unlock()
	c.cl.SetOffsets(set)
	c.cl.ResumeFetchPartitions(byTopic(started))
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
				setRecord(&out[i], r)
				i++
			}
		})
		out = out[:i]
	}
	return out, errors.Join(errs...)
}

// setRecord sets every field of o (an element of a reused buffer) from r,
// one field at a time: assigning a whole Record literal to heap memory
// costs a bulk write barrier per record while the GC runs, which showed in
// the consume path's profile (see the Record field test in the root
// package, which fails when Record gains a field this must set).
func setRecord(o *polykafka.Record, r *kgo.Record) {
	o.Topic = r.Topic
	o.Partition = r.Partition
	o.Offset = r.Offset
	o.Key = r.Key
	o.Value = r.Value
	o.Headers = fromKgoHeaders(r.Headers)
	o.Timestamp = r.Timestamp
	o.Native = r
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
	return c.committed(ctx, c.group, topics, c.stable)
}

// Rejoin implements driver.Consumer. For growth, the counts go into the
// join user data, so that even a non-leader's rejoin rebalances, and kgo
// refreshes its metadata. A leader whose metadata shows new partitions
// rejoins by itself (kgo's findNewAssignments), so on the leader a forced
// rebalance would add a second one for the same growth: it is forced only
// on a non-leader, or for a retry (nil counts), when nothing grew.
//
// Under KIP-848 nothing is rejoined: the coordinator assigns new
// partitions by itself, and for a retry (nil counts) the partitions whose
// Assigned failed, which the member still owns, are decided again here.
func (c *consumer) Rejoin(ctx context.Context, counts map[string]int32) error {
	if c.kip848 {
		if counts == nil {
			c.retryFailed(ctx)
		} else {
			c.cl.ForceMetadataRefresh()
		}
		return nil
	}
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
// partition (the handler commits them), then the client is closed. Under
// the classic protocol a JoinGroup or SyncGroup in flight is not waited
// for: the client is ended and the member leaves by itself (leave.go).
//
// Under KIP-848 kgo generates the member id before it joins, so it sends a
// leave even for a member the coordinator has not admitted yet (member
// epoch 0), and would wait on an unreachable cluster for all of ctx. Such
// a leave matters only if a join is in flight, when the cluster answers
// within a round trip, so it is bounded by unadmittedLeave.
func (c *consumer) Close(ctx context.Context) error {
	defer c.stop()
	leaveCtx := ctx
	if c.kip848 {
		if _, epoch := c.cl.GroupMetadata(); epoch <= 0 {
			var cancel context.CancelFunc
			leaveCtx, cancel = context.WithTimeout(ctx, unadmittedLeave)
			defer cancel()
		}
	}
	var err error
	if c.kip848 {
		err = c.cl.LeaveGroupContext(leaveCtx)
		c.cl.Close()
	} else {
		err = c.leaveClassic(ctx)
	}
	if errors.Is(err, kgo.ErrClientClosed) || leaveCtx != ctx && ctx.Err() == nil && leaveCtx.Err() != nil {
		err = nil // closed already, or the bounded leave of a member never admitted
	}
	return err
}

// unadmittedLeave bounds the leave of a KIP-848 member not admitted yet.
const unadmittedLeave = 2 * time.Second

// As implements driver.Consumer.
func (c *consumer) As(target any) bool {
	if p, ok := target.(**kgo.Client); ok && p != nil {
		*p = c.cl
		return true
	}
	return false
}
