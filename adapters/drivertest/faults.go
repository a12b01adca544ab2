package drivertest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

func testBrokerUnavailable(t *testing.T, e *env) {
	b := e.h.NewBackend(t, []string{testcluster.DeadAddress(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	c, err := consumer.New(ctx, b, "g", []string{"t"}, e.consumerOpts(nil))
	if c != nil {
		_ = c.Close()
	}
	requireCode(t, e, err, polykafka.Unavailable, "consumer.New with no reachable broker (retried until its deadline)")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: consumer.New's error says its deadline expired", e.rule)
	assert.Less(t, time.Since(start), 3*time.Second, "%s: consumer.New returned long after its context's deadline (2s)", e.rule)

	// consumer.New used its whole deadline: the producer gets its own.
	p, err := producer.New(e.ctx(2*time.Second), b, &producer.Options{Logger: e.logger, CloseTimeout: time.Second})
	require.NoError(t, err, "%s: opening a producer does not need a broker", e.rule)
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	start = time.Now()
	err = p.Send(sctx, &polykafka.Record{Topic: "t", Value: []byte("v")})
	requireCode(t, e, err, polykafka.Unavailable, "Send with no reachable broker and a 1s deadline")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: Send's error still says its deadline expired", e.rule)
	assert.True(t, strings.HasPrefix(err.Error(), "producer: Send"), "%s: Send's error names Send: %q", e.rule, err)
	assert.Less(t, time.Since(start), 2*time.Second, "%s: Send returned long after its context's deadline (1s)", e.rule)

	// Another topic: kgo waits for an unknown topic's metadata on the
	// contexts of its first buffered record and fails every record of the
	// topic with that context's error, so a record of "t" could get the
	// deadline of the Send above instead of Close's verdict.
	called := make(chan error, 1)
	p.SendAsync(context.Background(), &polykafka.Record{Topic: "t2", Value: []byte("v")}, func(_ *polykafka.Record, err error) { called <- err })
	// Close may report that it failed records; what matters is that their
	// callbacks ran.
	_ = p.Close()
	select {
	case err := <-called:
		// Close gave up on the record (CloseTimeout): that is not the
		// user closing the producer under a send, and the record may
		// have been written.
		requireCode(t, e, err, polykafka.Unavailable, "the callback of a record Close gave up on", "CloseTimeout")
		assert.True(t, strings.HasPrefix(err.Error(), "producer: Close"), "%s: the callback's error says Close gave up: %q", e.rule, err)
	default:
		t.Errorf("%s: Close returned before the pending callback ran", e.rule)
	}
}

func testCancelledContext(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	p := e.newProducer(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte("v")})
	assert.ErrorIs(t, err, context.Canceled, "%s: Send with a cancelled context returns the context's error, unwrapped", e.rule)

	group := e.cluster.Group(t)
	_, err = consumer.New(ctx, e.backend, group, []string{topic}, e.consumerOpts(nil))
	assert.ErrorIs(t, err, context.Canceled, "%s: consumer.New with a cancelled context", e.rule)

	c := e.newConsumer(group, []string{topic}, nil)
	_, err = c.Poll(ctx)
	assert.ErrorIs(t, err, context.Canceled, "%s: Poll with a cancelled context", e.rule)
	assert.NoError(t, c.Run(ctx, func(context.Context, polykafka.Record) error { return nil }),
		"%s: Run with a cancelled context returns nil at once", e.rule)
}

func testMemoryStore(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	first := e.produce(topic, "first", 5, 0, 1)
	store := offsetstore.NewMemory()
	s1 := newSink()
	c1 := e.newConsumer(group, []string{topic}, &consumer.Options{Store: store, Initial: discovery.Earliest})
	e.run(c1, s1.handler)
	e.received(s1, first, "first consumer on a memory store")
	require.NoError(t, c1.Close())
	assert.Empty(t, e.cluster.Committed(t, group, topic), "%s: positions live in the store, not in Kafka", e.rule)
	pos, err := store.Load(e.ctx(5*time.Second), group, topic)
	require.NoError(t, err)
	for p := int32(0); p < 2; p++ {
		assert.Equal(t, int64(5), pos[p].Offset, "%s: the store holds the processed position of p%d", e.rule, p)
		assert.Equal(t, int32(2), pos[p].Baseline, "%s: the store holds the baseline", e.rule)
	}

	second := e.produce(topic, "second", 5, 0, 1)
	s2 := newSink()
	// Kafka has no commit for the group, so a backend applying its own
	// reset policy would start at earliest (or latest) here, not at 5.
	c2 := e.newConsumer(group, []string{topic}, &consumer.Options{Store: store, Initial: discovery.Earliest})
	e.run(c2, s2.handler)
	e.received(s2, second, "second consumer on the same store")
	e.noneOf(s2, first, "the backend ignored the store's positions")
}

func testInitialAtTime(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	now := time.Now()
	var rs []*kgo.Record
	for i, age := range []time.Duration{3 * time.Hour, 2 * time.Hour, 90 * time.Minute, 30 * time.Minute, 10 * time.Minute} {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte{byte('a' + i)}, Timestamp: now.Add(-age)})
	}
	e.cluster.Produce(t, rs...)
	s, d := newSink(), newDecisions()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.At(now.Add(-time.Hour)), Hooks: []any{d}})
	e.run(c, s.handler)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.eventually(wait, func() bool { return len(s.offsets(tp)) >= 2 }, "records newer than the policy's time were not read")
	assert.Equal(t, []int64{3, 4}, s.offsets(tp), "%s: Initial=At(t) starts at the first record at or after t", e.rule)
	e.wantDecision(d, topic, 0, discovery.ReasonInitial, 3)
}

// failFirstCommit makes the first OffsetCommit of group fail with
// REBALANCE_IN_PROGRESS on every partition (in-process cluster only).
func failFirstCommit(t *testing.T, e *env, group string) *atomic.Int32 {
	fake := e.cluster.Fake()
	if fake == nil {
		t.Skip("fault injection needs the in-process cluster; this case does not run against KAFKA_BROKERS")
	}
	var failed atomic.Int32
	fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.OffsetCommitRequest)
		if r.Group != group {
			fake.KeepControl()
			return nil, nil, false
		}
		failed.Add(1)
		return commitErrorResponse(r, kerr.RebalanceInProgress.Code), nil, true
	})
	return &failed
}

func testAssignCommitFails(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	failed := failFirstCommit(t, e, group)
	old := e.produce(topic, "old", 5, 0)
	s, d := newSink(), newDecisions()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{d}})
	done := e.run(c, s.handler)
	e.assigned(wait, topic, 1, c)
	e.wantDecision(d, topic, 0, discovery.ReasonInitial, 5)
	assert.Equal(t, int32(1), failed.Load(), "%s: the injected failure hit the start decision's commit", e.rule)
	fresh := e.produce(topic, "new", 5, 0)
	e.received(s, fresh, "records after a failed start-decision commit")
	e.noneOf(s, old, "history was read after the failed commit")
	select {
	case err := <-done:
		t.Fatalf("%s: Run stopped: %v", e.rule, err)
	default:
	}
	assert.GreaterOrEqual(t, e.cluster.Committed(t, group, topic)[0].At, int64(5), "%s: the retried decision (or later progress) was committed", e.rule)
}

// lostHook records OnPartitionsLost calls.
type lostHook struct{ n atomic.Int32 }

func (h *lostHook) OnPartitionsLost(context.Context, []polykafka.TopicPartition) { h.n.Add(1) }

// loseSession makes the coordinator end the session of the member of
// group: its next heartbeat is refused (UNKNOWN_MEMBER_ID under the classic
// protocol, FENCED_MEMBER_EPOCH under KIP-848), so its partitions are lost,
// not revoked (in-process cluster only).
func loseSession(e *env, group string) {
	fake := e.cluster.Fake()
	require.NotNil(e.t, fake, "loseSession needs the in-process cluster")
	var fired atomic.Bool
	if e.h.GroupProtocol == consumer.GroupProtocolConsumer {
		// KIP-848: the heartbeat is refused with FENCED_MEMBER_EPOCH,
		// which the coordinator answers a member whose session it
		// ended: the member gives up its partitions without committing
		// (lost) and rejoins at epoch 0 with the same member id, which
		// the coordinator (unlike after UNKNOWN_MEMBER_ID, which this
		// fault cannot make it forget) still knows.
		fake.ControlKey(int16(kmsg.ConsumerGroupHeartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
			r := req.(*kmsg.ConsumerGroupHeartbeatRequest)
			if r.Group != group || r.MemberEpoch <= 0 || !fired.CompareAndSwap(false, true) {
				fake.KeepControl()
				return nil, nil, false
			}
			resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
			resp.ErrorCode = kerr.FencedMemberEpoch.Code
			return resp, nil, true
		})
		return
	}
	fake.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.HeartbeatRequest)
		if r.Group != group || !fired.CompareAndSwap(false, true) {
			fake.KeepControl()
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
}

func testPartitionsLost(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	fake := e.cluster.Fake()
	if fake == nil {
		t.Skip("fault injection needs the in-process cluster; this case does not run against KAFKA_BROKERS")
	}
	s, lost := newSink(), &lostHook{}
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{lost}})
	e.run(c, s.handler)
	e.assigned(wait, topic, 2, c)
	before := e.produce(topic, "before", 5, 0, 1)
	e.received(s, before, "records before the session was lost")

	loseSession(e, group)
	e.eventually(wait, func() bool { return lost.n.Load() > 0 }, "HookLost was not called after the member was fenced")
	e.assigned(wait, topic, 2, c)
	after := e.produce(topic, "after", 5, 0, 1)
	e.received(s, after, "records after the member rejoined")
}

// stallingStore is a memory store whose next Save, once stall is set,
// blocks until its context is done: a commit stuck on a slow store or
// broker.
type stallingStore struct {
	offsetstore.Store
	stall   atomic.Bool
	stalled chan struct{} // closed when the stalled Save has started
}

func newStallingStore() *stallingStore {
	return &stallingStore{Store: offsetstore.NewMemory(), stalled: make(chan struct{})}
}

func (s *stallingStore) Save(ctx context.Context, group string, positions map[polykafka.TopicPartition]offsetstore.Position) error {
	if s.stall.CompareAndSwap(true, false) {
		close(s.stalled)
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Store.Save(ctx, group, positions)
}

func testLostDuringCommit(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	if e.cluster.Fake() == nil {
		t.Skip("fault injection needs the in-process cluster; this case does not run against KAFKA_BROKERS")
	}
	store := newStallingStore()
	s, lost := newSink(), &lostHook{}
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Store: store, Commit: consumer.CommitManual, Initial: discovery.Earliest, Hooks: []any{lost}})
	e.run(c, s.handler)
	e.assigned(wait, topic, 2, c)
	before := e.produce(topic, "before", 5, 0, 1)
	e.received(s, before, "records before the commit")

	// The user commits with a long deadline, and the store does not answer.
	store.stall.Store(true)
	committed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		committed <- c.Commit(ctx)
	}()
	select {
	case <-store.stalled:
	case <-time.After(wait):
		t.Fatalf("%s: Commit never reached the store", e.rule)
	}

	start := time.Now()
	loseSession(e, group)
	e.eventually(10*time.Second, func() bool { return lost.n.Load() > 0 },
		"HookLost was not called while a Commit (1-minute deadline) was in flight: the rebalance waited on the commit")
	t.Logf("%s: HookLost %v after the fault", e.rule, time.Since(start).Round(time.Millisecond))
	select {
	case err := <-committed:
		requireCode(t, e, err, polykafka.Rebalancing, "a Commit cut short by lost partitions")
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Commit did not return after the partitions were lost", e.rule)
	}
	e.assigned(wait, topic, 2, c)
	after := e.produce(topic, "after", 5, 0, 1)
	e.received(s, after, "records after the member rejoined")
	assert.Less(t, time.Since(start), 30*time.Second, "%s: the member read on long after it lost its partitions", e.rule)
}

// errStoreDown is the cause of failingStore's failures.
var errStoreDown = errors.New("the store is down")

// failingStore is a memory store whose Saves fail with an Unavailable
// error caused by errStoreDown once fail is set.
type failingStore struct {
	offsetstore.Store
	fail atomic.Bool
}

func (s *failingStore) Save(ctx context.Context, group string, positions map[polykafka.TopicPartition]offsetstore.Position) error {
	if s.fail.Load() {
		return polykafka.NewError(polykafka.Unavailable, "test store: Save", "", errStoreDown)
	}
	return s.Store.Save(ctx, group, positions)
}

func testStoreFailure(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produce(topic, "v", 3, 0)
	store := &failingStore{Store: offsetstore.NewMemory()}
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Store: store, Commit: consumer.CommitManual, Initial: discovery.Earliest})
	ctx := e.ctx(wait)
	var got []*polykafka.Record
	for len(got) < 3 {
		rs, err := c.Poll(ctx)
		require.NoError(t, err, "%s: Poll", e.rule)
		got = append(got, rs...)
	}
	store.fail.Store(true)
	c.Mark(got...)
	err := c.Commit(ctx)
	require.Error(t, err, "%s: Commit on a failing store", e.rule)
	assert.Equal(t, polykafka.Unavailable, polykafka.Code(err), "%s: %v", e.rule, err)
	assert.ErrorIs(t, err, errStoreDown, "%s: the store's error is reachable with errors.Is", e.rule)
	assert.Empty(t, e.cluster.Committed(t, group, topic), "%s: a failing store never falls back to committing in Kafka", e.rule)
}
