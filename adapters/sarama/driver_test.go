package polysarama

// Adapter-level tests: the driver interfaces exercised directly against a
// real Kafka protocol peer (kfake, or $KAFKA_BROKERS), with a small
// GroupHandler standing in for the portable layer.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("POLYKAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// newTestBackend is the backend with test timings only: a short heartbeat
// so members learn of rebalances quickly.
func newTestBackend(brokers []string) *Backend {
	cfg := sarama.NewConfig()
	cfg.Version = DefaultVersion
	cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 250 * time.Millisecond
	return New(polykafka.Connection{Brokers: brokers}, cfg)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testHandler decides starts with start (default: the log start offset),
// commits them on assign like the portable layer, and records calls.
type testHandler struct {
	t     *testing.T
	c     atomic.Pointer[driver.Consumer]
	start func(tp polykafka.TopicPartition) (polykafka.CommittedOffset, error)
	fail  atomic.Bool // Assigned fails

	mu       sync.Mutex
	assigned map[polykafka.TopicPartition]bool
	revoked  int
	lost     int
	calls    int
}

func (h *testHandler) Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	h.mu.Lock()
	h.calls++
	h.mu.Unlock()
	if h.fail.Load() {
		return nil, errors.New("test: Assigned fails")
	}
	c := *h.c.Load()
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	var err error
	if h.start != nil {
		for _, tp := range tps {
			if out[tp], err = h.start(tp); err != nil {
				return nil, err
			}
		}
	} else {
		offs, err := c.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
		if err != nil {
			return nil, err
		}
		for tp, o := range offs {
			out[tp] = polykafka.CommittedOffset{Offset: o, Metadata: "polykafka:v1:baseline=1"}
		}
	}
	if err := c.Commit(ctx, out); err != nil {
		return nil, err
	}
	h.mu.Lock()
	for _, tp := range tps {
		h.assigned[tp] = true
	}
	h.mu.Unlock()
	return out, nil
}

func (h *testHandler) Revoked(_ context.Context, tps []polykafka.TopicPartition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revoked++
	for _, tp := range tps {
		delete(h.assigned, tp)
	}
}

func (h *testHandler) Lost(_ context.Context, tps []polykafka.TopicPartition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lost++
	for _, tp := range tps {
		delete(h.assigned, tp)
	}
}

func (h *testHandler) owned() []polykafka.TopicPartition {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []polykafka.TopicPartition
	for tp := range h.assigned {
		out = append(out, tp)
	}
	return out
}

func openConsumer(t *testing.T, b *Backend, group string, topics []string, h *testHandler) driver.Consumer {
	t.Helper()
	return openConsumerCfg(t, b, driver.ConsumerConfig{Group: group, Topics: topics}, h)
}

func openConsumerCfg(t *testing.T, b *Backend, cfg driver.ConsumerConfig, h *testHandler) driver.Consumer {
	t.Helper()
	h.t = t
	if h.assigned == nil {
		h.assigned = make(map[polykafka.TopicPartition]bool)
	}
	var ready sync.WaitGroup
	ready.Add(1)
	// The handler needs the consumer; Assigned cannot run before
	// OpenConsumer returns because it waits on ready.
	cfg.Handler = &gateHandler{h: h, ready: &ready}
	cfg.Logger = testLogger(t)
	c, err := b.OpenConsumer(ctxT(t, 30*time.Second), cfg)
	require.NoError(t, err)
	h.c.Store(&c)
	ready.Done()
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

type gateHandler struct {
	h     *testHandler
	ready *sync.WaitGroup
}

func (g *gateHandler) Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	g.ready.Wait()
	return g.h.Assigned(ctx, tps)
}
func (g *gateHandler) Revoked(ctx context.Context, tps []polykafka.TopicPartition) {
	g.h.Revoked(ctx, tps)
}
func (g *gateHandler) Lost(ctx context.Context, tps []polykafka.TopicPartition) { g.h.Lost(ctx, tps) }

func eventually(t *testing.T, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetchN fetches until n records arrived or d passed.
func fetchN(t *testing.T, c driver.Consumer, n int, d time.Duration) []polykafka.Record {
	t.Helper()
	ctx := ctxT(t, d)
	var out []polykafka.Record
	for len(out) < n {
		rs, err := c.Fetch(ctx, 100, nil)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if parts, rest := driver.PartitionErrors(err); len(parts) > 0 || rest != nil {
			t.Logf("fetch error: %v", err)
		}
		out = append(out, rs...)
	}
	return out
}

func produceN(t *testing.T, cl *testcluster.Cluster, topic string, p int32, n int, prefix string) {
	t.Helper()
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	cl.Produce(t, rs...)
}

func TestConsumerStartsExactlyAtAssigned(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic, group := cl.Topic(t, 2), cl.Group(t)
	produceN(t, cl, topic, 0, 10, "a")
	produceN(t, cl, topic, 1, 10, "b")
	h := &testHandler{start: func(tp polykafka.TopicPartition) (polykafka.CommittedOffset, error) {
		return polykafka.CommittedOffset{Offset: 3 + int64(tp.Partition), Metadata: "polykafka:v1:baseline=2"}, nil
	}}
	c := openConsumer(t, newTestBackend(cl.Brokers()), group, []string{topic}, h)
	rs := fetchN(t, c, 7+6, 20*time.Second)
	require.Len(t, rs, 13, "every record from the decided starts is fetched")
	first := map[int32]int64{}
	for i, r := range rs {
		if _, ok := first[r.Partition]; !ok {
			first[r.Partition] = r.Offset
		}
		var m *sarama.ConsumerMessage
		require.True(t, r.As(&m), "Record.Native is a *sarama.ConsumerMessage")
		if i > 0 && rs[i-1].Partition == r.Partition {
			assert.Equal(t, rs[i-1].Offset+1, r.Offset, "records of one partition are in offset order")
		}
	}
	assert.Equal(t, map[int32]int64{0: 3, 1: 4}, first, "each partition starts exactly at the offset Assigned returned")

	got, err := c.Committed(ctxT(t, 10*time.Second), []string{topic})
	require.NoError(t, err)
	assert.Equal(t, polykafka.CommittedOffset{Offset: 3, Metadata: "polykafka:v1:baseline=2"}, got[polykafka.TopicPartition{Topic: topic}], "Commit writes offset and metadata")
	for p, r := range cl.Committed(t, group, topic) {
		assert.Equal(t, "polykafka:v1:baseline=2", r.Metadata, "partition %d: the baseline metadata is kept", p)
	}
	var sess sarama.ConsumerGroupSession
	assert.True(t, c.As(&sess), "As exposes the current session")
	md, ok := c.(driver.GroupMember).GroupMetadata()
	require.True(t, ok)
	assert.Equal(t, group, md.Group)
	assert.Positive(t, md.Generation)
}

func TestConsumerAssignedFailureNeverFetches(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic, group := cl.Topic(t, 1), cl.Group(t)
	produceN(t, cl, topic, 0, 5, "x")
	h := &testHandler{}
	h.fail.Store(true)
	c := openConsumer(t, newTestBackend(cl.Brokers()), group, []string{topic}, h)
	eventually(t, 20*time.Second, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.calls > 0 }, "Assigned was never called")
	rs := fetchN(t, c, 1, 2*time.Second)
	assert.Empty(t, rs, "a partition whose Assigned failed is never handed out")

	// Rejoin makes Assigned run again; now it succeeds.
	h.fail.Store(false)
	require.NoError(t, c.Rejoin(ctxT(t, time.Second), map[string]int32{topic: 1}))
	rs = fetchN(t, c, 5, 20*time.Second)
	assert.Len(t, rs, 5, "after a successful Assigned the partition is read")
}

func TestConsumerCommittedAndListOffsets(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic, group := cl.Topic(t, 3), cl.Group(t)
	before := time.Now().Add(-time.Second)
	produceN(t, cl, topic, 0, 4, "x")
	produceN(t, cl, topic, 2, 2, "x")
	h := &testHandler{}
	c := openConsumer(t, newTestBackend(cl.Brokers()), group, []string{topic}, h)
	ctx := ctxT(t, 20*time.Second)
	tps := []polykafka.TopicPartition{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}, {Topic: topic, Partition: 2}}
	end, err := c.ListOffsets(ctx, tps, polykafka.OffsetLatest)
	require.NoError(t, err)
	assert.Equal(t, map[polykafka.TopicPartition]int64{tps[0]: 4, tps[1]: 0, tps[2]: 2}, end)
	start, err := c.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
	require.NoError(t, err)
	assert.Equal(t, map[polykafka.TopicPartition]int64{tps[0]: 0, tps[1]: 0, tps[2]: 0}, start)
	byTime, err := c.ListOffsets(ctx, tps, before.UnixMilli())
	require.NoError(t, err)
	assert.Equal(t, int64(0), byTime[tps[0]])
	assert.Equal(t, int64(-1), byTime[tps[1]], "no record at or after the timestamp: -1")
	future, err := c.ListOffsets(ctx, tps[:1], time.Now().Add(time.Hour).UnixMilli())
	require.NoError(t, err)
	assert.Equal(t, int64(-1), future[tps[0]])

	counts, err := c.PartitionCounts(ctx, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, map[string]int32{topic: 3}, counts)
	_, err = c.PartitionCounts(ctx, []string{topic, "pk-no-such-topic"})
	require.Error(t, err)
	assert.Equal(t, polykafka.NotFound, c.ErrorCode(err), "a missing topic is NotFound: %v", err)
}

func TestConsumerRejoinFromNonLeaderAssignsNewPartitions(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic, group := cl.Topic(t, 2), cl.Group(t)
	b := newTestBackend(cl.Brokers())
	h1, h2 := &testHandler{}, &testHandler{}
	c1 := openConsumer(t, b, group, []string{topic}, h1)
	eventually(t, 20*time.Second, func() bool { return len(h1.owned()) == 2 }, "the first member never owned both partitions")
	c2 := openConsumer(t, b, group, []string{topic}, h2)
	eventually(t, 20*time.Second, func() bool { return len(h1.owned()) == 1 && len(h2.owned()) == 1 }, "the two members never shared the partitions")

	cl.AddPartitions(t, topic, 4)
	// Only the later member (not the leader: the first joiner leads)
	// notices the growth.
	require.NoError(t, c2.Rejoin(ctxT(t, time.Second), map[string]int32{topic: 4}))
	eventually(t, 30*time.Second, func() bool { return len(h1.owned())+len(h2.owned()) == 4 }, "the new partitions were not assigned after a non-leader's Rejoin (owned %v + %v)", h1.owned(), h2.owned())
	produceN(t, cl, topic, 3, 3, "new")
	var got []polykafka.Record
	eventually(t, 20*time.Second, func() bool {
		for _, c := range []driver.Consumer{c1, c2} {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			rs, _ := c.Fetch(ctx, 100, nil)
			cancel()
			got = append(got, rs...)
		}
		return len(got) >= 3
	}, "records of a new partition were not fetched")
}

func TestConsumerLostOnUnknownMember(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	fake := cl.Fake()
	if fake == nil {
		t.Skip("needs the in-process cluster")
	}
	topic, group := cl.Topic(t, 1), cl.Group(t)
	h := &testHandler{}
	openConsumer(t, newTestBackend(cl.Brokers()), group, []string{topic}, h)
	eventually(t, 20*time.Second, func() bool { return len(h.owned()) == 1 }, "never assigned")
	var fired atomic.Bool
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
	eventually(t, 20*time.Second, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.lost > 0 }, "Lost was not called after UNKNOWN_MEMBER_ID")
	eventually(t, 20*time.Second, func() bool { return len(h.owned()) == 1 }, "the member did not rejoin")
}

func TestConsumerCloseRevokes(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic, group := cl.Topic(t, 1), cl.Group(t)
	h := &testHandler{}
	c := openConsumer(t, newTestBackend(cl.Brokers()), group, []string{topic}, h)
	eventually(t, 20*time.Second, func() bool { return len(h.owned()) == 1 }, "never assigned")
	require.NoError(t, c.Close(ctxT(t, 20*time.Second)))
	h.mu.Lock()
	assert.Equal(t, 1, h.revoked, "Close calls Revoked for the partitions still owned")
	h.mu.Unlock()
	_, err := c.Fetch(ctxT(t, time.Second), 1, nil)
	assert.Equal(t, polykafka.Closed, c.ErrorCode(err))
}

// delivery records Delivered calls.
type delivery struct {
	mu    sync.Mutex
	recs  map[*polykafka.Record]int
	errs  []error
	total atomic.Int64
}

func (d *delivery) fn(r *polykafka.Record, err error, done func(*polykafka.Record, error)) {
	d.mu.Lock()
	if d.recs == nil {
		d.recs = make(map[*polykafka.Record]int)
	}
	d.recs[r]++
	if err != nil {
		d.errs = append(d.errs, err)
	}
	d.mu.Unlock()
	d.total.Add(1)
	if done != nil {
		done(r, err)
	}
}

func openProducer(t *testing.T, b *Backend, cfg driver.ProducerConfig, d *delivery) driver.Producer {
	t.Helper()
	cfg.Delivered = d.fn
	cfg.Logger = testLogger(t)
	if cfg.Acks == 0 {
		cfg.Acks = -1
	}
	p, err := b.OpenProducer(ctxT(t, 20*time.Second), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func TestProducerKeysAndManualPartitions(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 5)
	d := &delivery{}
	p := openProducer(t, newTestBackend(cl.Brokers()), driver.ProducerConfig{ManualPartitions: true, Idempotence: driver.IdempotenceAuto}, d)
	assert.True(t, p.Idempotent(), "sarama gives an idempotent producer when asked")
	ctx := ctxT(t, 20*time.Second)
	var recs []*polykafka.Record
	for i := range 50 {
		recs = append(recs, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Key: fmt.Appendf(nil, "key-%d", i), Value: []byte("v"),
			Headers: []polykafka.Header{{Key: "h", Value: []byte("x")}}})
	}
	manual := &polykafka.Record{Topic: topic, Partition: 3, Key: []byte("key-0"), Value: []byte("m")}
	bad := &polykafka.Record{Topic: topic, Partition: 7, Value: []byte("bad")}
	all := append(slices.Clone(recs), manual, bad)
	var wg sync.WaitGroup
	wg.Add(len(all))
	for _, r := range all {
		p.Produce(ctx, r, func(*polykafka.Record, error) { wg.Done() })
	}
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range all {
		assert.Equal(t, 1, d.recs[r], "Delivered is called exactly once per record")
	}
	require.Len(t, d.errs, 1, "only the record naming a partition that does not exist fails: %v", d.errs)
	assert.Equal(t, polykafka.InvalidArgument, p.ErrorCode(d.errs[0]), "%v", d.errs[0])
	for _, r := range recs {
		assert.Equal(t, driver.KeyPartition(r.Key, 5), r.Partition, "key %q lands on KeyPartition", r.Key)
		assert.False(t, r.Timestamp.IsZero(), "a successful send sets the timestamp")
	}
	assert.Equal(t, int32(3), manual.Partition, "a record with its own partition goes there")
	end := cl.EndOffsets(t, topic)
	assert.Equal(t, end[3]-1, max(manual.Offset, end[3]-1))
}

func TestProducerCloseDeliversEverything(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 3)
	d := &delivery{}
	p := openProducer(t, newTestBackend(cl.Brokers()), driver.ProducerConfig{Idempotence: driver.IdempotenceOff, Linger: 50 * time.Millisecond}, d)
	const n = 2000
	ctx := ctxT(t, 20*time.Second)
	for i := range n {
		p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: fmt.Appendf(nil, "%d", i)}, nil)
	}
	require.NoError(t, p.Close(ctxT(t, 20*time.Second)))
	assert.Equal(t, int64(n), d.total.Load(), "after Close, Delivered was called for every record")
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition}, nil)
	assert.Equal(t, int64(n+1), d.total.Load(), "a record produced after Close is delivered at once")
	d.mu.Lock()
	last := d.errs[len(d.errs)-1]
	d.mu.Unlock()
	assert.Equal(t, polykafka.Closed, p.ErrorCode(last))
}

func TestProducerTransactions(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	d := &delivery{}
	p := openProducer(t, newTestBackend(cl.Brokers()), driver.ProducerConfig{TransactionalID: testcluster.Name(t, "tx")}, d)
	tx, ok := p.(driver.Transactor)
	require.True(t, ok, "a transactional sarama producer is a Transactor")
	ctx := ctxT(t, 20*time.Second)
	for _, commit := range []bool{false, true} {
		require.NoError(t, tx.BeginTransaction(ctx))
		var wg sync.WaitGroup
		wg.Add(1)
		p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: fmt.Appendf(nil, "%v", commit)}, func(*polykafka.Record, error) { wg.Done() })
		wg.Wait()
		require.NoError(t, tx.EndTransaction(ctx, commit))
	}
	assert.Empty(t, d.errs)

	group := cl.Group(t)
	c := openConsumerCfg(t, newTestBackend(cl.Brokers()), driver.ConsumerConfig{Group: group, Topics: []string{topic}, ReadCommitted: true}, &testHandler{})
	rs := fetchN(t, c, 1, 10*time.Second)
	require.Len(t, rs, 1)
	assert.Equal(t, "true", string(rs[0].Value), "read_committed sees only the committed transaction")
}

func TestSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []polykafka.SASLMechanism{polykafka.SASLPlain, polykafka.SASLScramSHA256, polykafka.SASLScramSHA512} {
		t.Run(string(mech), func(t *testing.T) {
			t.Parallel()
			fc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(string(mech), "admin", "secret"), kfake.SeedTopics(1, "t"))
			require.NoError(t, err)
			t.Cleanup(fc.Close)
			b := New(polykafka.Connection{Brokers: fc.ListenAddrs(), SASL: &polykafka.SASL{Mechanism: mech, Username: "admin", Password: "secret"}}, nil)
			d := &delivery{}
			p, err := b.OpenProducer(ctxT(t, 10*time.Second), driver.ProducerConfig{Acks: -1, Idempotence: driver.IdempotenceOff, Delivered: d.fn, Logger: testLogger(t)})
			require.NoError(t, err)
			defer p.Close(context.Background())
			counts, err := p.PartitionCounts(ctxT(t, 10*time.Second), []string{"t"})
			require.NoError(t, err)
			assert.Equal(t, map[string]int32{"t": 1}, counts)

			bad := New(polykafka.Connection{Brokers: fc.ListenAddrs(), SASL: &polykafka.SASL{Mechanism: mech, Username: "admin", Password: "wrong"}}, nil)
			bp, err := bad.OpenProducer(ctxT(t, 10*time.Second), driver.ProducerConfig{Acks: -1, Idempotence: driver.IdempotenceOff, Delivered: d.fn, Logger: testLogger(t)})
			require.NoError(t, err, "opening a producer needs no broker")
			defer bp.Close(context.Background())
			_, err = bp.PartitionCounts(ctxT(t, 10*time.Second), []string{"t"})
			require.Error(t, err, "a wrong password is refused")
			t.Logf("wrong password: %v (%s)", err, bp.ErrorCode(err))
		})
	}
}

func TestErrorCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want polykafka.ErrorCode
	}{
		{nil, polykafka.OK},
		{sarama.ErrUnknownTopicOrPartition, polykafka.NotFound},
		{fmt.Errorf("x: %w", sarama.ErrRebalanceInProgress), polykafka.Rebalancing},
		{&sarama.ConsumerError{Topic: "t", Err: sarama.ErrOffsetOutOfRange}, polykafka.OffsetOutOfRange},
		{sarama.ErrClosedClient, polykafka.Closed},
		{sarama.ErrOutOfBrokers, polykafka.Unavailable},
		{sarama.ConfigurationError("bad"), polykafka.InvalidArgument},
		{errors.New("other"), polykafka.Unknown},
	} {
		assert.Equal(t, tc.want, errorCode(tc.err), "%v", tc.err)
	}
}

func TestPartitionerMatchesKeyPartition(t *testing.T) {
	pt := newPartitioner("t")
	for i := range 1000 {
		key := fmt.Appendf(nil, "key-%d", i)
		for _, n := range []int32{1, 3, 7, 64} {
			got, err := pt.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
			require.NoError(t, err)
			require.Equal(t, driver.KeyPartition(key, n), got, "key %q among %d", key, n)
		}
	}
}

func TestConsumerSeekAndPause(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic, group := cl.Topic(t, 1), cl.Group(t)
	tp := polykafka.TopicPartition{Topic: topic}
	produceN(t, cl, topic, 0, 10, "a")
	h := &testHandler{}
	c := openConsumer(t, newTestBackend(cl.Brokers()), group, []string{topic}, h)
	rs := fetchN(t, c, 10, 20*time.Second)
	require.Len(t, rs, 10)

	require.NoError(t, c.(driver.Seeker).Seek(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp: 4}))
	rs = fetchN(t, c, 6, 20*time.Second)
	require.Len(t, rs, 6, "after Seek the partition is read again from the offset")
	assert.Equal(t, int64(4), rs[0].Offset, "Seek restarts exactly at its offset")

	p := c.(driver.Pauser)
	require.NoError(t, p.Pause(ctxT(t, time.Second), []polykafka.TopicPartition{tp}))
	produceN(t, cl, topic, 0, 5, "b") // offsets 10..14
	assert.Empty(t, fetchN(t, c, 1, time.Second), "a paused partition hands out nothing")
	require.NoError(t, p.Resume(ctxT(t, time.Second), []polykafka.TopicPartition{tp}))
	rs = fetchN(t, c, 5, 20*time.Second)
	require.Len(t, rs, 5)
	assert.Equal(t, int64(10), rs[0].Offset, "Resume goes on after the last record Fetch returned")

	// Out of range: report once, then Seek brings the partition back.
	require.NoError(t, c.(driver.Seeker).Seek(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp: 1000}))
	ctx := ctxT(t, 20*time.Second)
	var oor error
	for oor == nil && ctx.Err() == nil {
		rs, err := c.Fetch(ctx, 10, nil)
		require.Empty(t, rs)
		if parts, _ := driver.PartitionErrors(err); len(parts) > 0 {
			oor = parts[0]
		}
	}
	require.Error(t, oor)
	assert.Equal(t, polykafka.OffsetOutOfRange, c.ErrorCode(oor), "%v", oor)
	require.NoError(t, c.(driver.Seeker).Seek(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp: 14}))
	rs = fetchN(t, c, 1, 20*time.Second)
	require.Len(t, rs, 1)
	assert.Equal(t, int64(14), rs[0].Offset)
}

func TestProducerWithoutBrokerNeverBlocks(t *testing.T) {
	t.Parallel()
	b := New(polykafka.Connection{Brokers: []string{"127.0.0.1:1"}}, nil)
	d := &delivery{}
	p, err := b.OpenProducer(ctxT(t, 5*time.Second), driver.ProducerConfig{Acks: -1, Idempotence: driver.IdempotenceAuto, Delivered: d.fn, Logger: testLogger(t)})
	require.NoError(t, err, "opening a producer needs no broker")
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	p.Produce(short, &polykafka.Record{Topic: "t", Partition: polykafka.AnyPartition, Value: []byte("a")}, nil)
	p.Produce(context.Background(), &polykafka.Record{Topic: "t", Partition: polykafka.AnyPartition, Value: []byte("b")}, nil)
	assert.Less(t, time.Since(start), 100*time.Millisecond, "Produce does not wait for sarama's producer")
	eventually(t, 5*time.Second, func() bool { return d.total.Load() >= 1 }, "the record whose context ended was not delivered")
	d.mu.Lock()
	assert.ErrorIs(t, d.errs[0], context.DeadlineExceeded, "a waiting record fails with its context's error")
	d.mu.Unlock()
	require.NoError(t, p.Close(ctxT(t, 5*time.Second)))
	assert.Equal(t, int64(2), d.total.Load(), "Close delivers every record")
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Len(t, d.errs, 2)
	assert.Contains(t, []polykafka.ErrorCode{polykafka.Closed, polykafka.Unavailable}, p.ErrorCode(d.errs[1]), "%v", d.errs[1])
}
