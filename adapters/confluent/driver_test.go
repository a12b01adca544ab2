//go:build cgo

package confluent

// Adapter-level tests: the driver used directly through the driver
// interfaces against a real cluster (kfake or KAFKA_BROKERS), with a small
// GroupHandler standing in for the portable layer.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

func testLogger() *slog.Logger {
	if os.Getenv("POLYKAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testBackendFor is the backend with test timings only: short heartbeats
// so members learn of rebalances quickly.
func testBackendFor(brokers []string) *Backend {
	return New(polykafka.Connection{Brokers: brokers}, kafka.ConfigMap{
		"heartbeat.interval.ms": 250,
		"session.timeout.ms":    6000,
	})
}

// handler is a GroupHandler that starts every partition at its earliest
// offset (or fails while fail is set) and records the calls.
type handler struct {
	t    *testing.T
	c    atomic.Pointer[driver.Consumer]
	fail atomic.Bool

	mu       sync.Mutex
	assigned [][]polykafka.TopicPartition
	revoked  [][]polykafka.TopicPartition
	lost     [][]polykafka.TopicPartition
	commit   map[polykafka.TopicPartition]polykafka.CommittedOffset // committed on Revoked
}

func (h *handler) Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	h.mu.Lock()
	h.assigned = append(h.assigned, tps)
	h.mu.Unlock()
	if h.fail.Load() {
		return nil, errors.New("test: decision failed")
	}
	c := *h.c.Load()
	offs, err := c.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
	if err != nil {
		return nil, err
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset, len(tps))
	for tp, o := range offs {
		out[tp] = polykafka.CommittedOffset{Offset: o, Metadata: "polykafka:v1:baseline=1"}
	}
	return out, nil
}

func (h *handler) Revoked(ctx context.Context, tps []polykafka.TopicPartition) {
	h.mu.Lock()
	h.revoked = append(h.revoked, tps)
	commit := h.commit
	h.mu.Unlock()
	if len(commit) > 0 {
		c := *h.c.Load()
		if err := c.Commit(ctx, commit); err != nil {
			h.t.Errorf("commit in Revoked: %v", err)
		}
	}
}

func (h *handler) Lost(_ context.Context, tps []polykafka.TopicPartition) {
	h.mu.Lock()
	h.lost = append(h.lost, tps)
	h.mu.Unlock()
}

func (h *handler) counts() (a, r, l int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.assigned), len(h.revoked), len(h.lost)
}

func openConsumer(t *testing.T, b *Backend, group string, topics []string, h *handler) driver.Consumer {
	t.Helper()
	h.t = t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := b.OpenConsumer(ctx, driver.ConsumerConfig{Group: group, Topics: topics, Handler: h, Logger: testLogger()})
	require.NoError(t, err)
	h.c.Store(&c)
	return c
}

func closeConsumer(t *testing.T, c driver.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	assert.NoError(t, c.Close(ctx))
}

// fetchUntil fetches until cond holds for the records fetched so far, or
// fails after d.
func fetchUntil(t *testing.T, c driver.Consumer, d time.Duration, cond func([]polykafka.Record) bool) []polykafka.Record {
	t.Helper()
	var all []polykafka.Record
	deadline := time.Now().Add(d)
	for !cond(all) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v (%d records fetched)", d, len(all))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rs, err := c.Fetch(ctx, 100, nil)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fetch: %v", err)
		}
		all = append(all, rs...)
	}
	return all
}

type delivery struct {
	r   *polykafka.Record
	err error
}

func openProducer(t *testing.T, b *Backend, cfg driver.ProducerConfig) (driver.Producer, chan delivery) {
	t.Helper()
	ch := make(chan delivery, 10000)
	cfg.Logger = testLogger()
	if cfg.Acks == 0 {
		cfg.Acks = -1
	}
	cfg.Delivered = func(r *polykafka.Record, err error, done func(*polykafka.Record, error)) {
		ch <- delivery{r, err}
		done(r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.OpenProducer(ctx, cfg)
	require.NoError(t, err)
	return p, ch
}

func TestRoundTripKeysHeaders(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 3)
	b := testBackendFor(cl.Brokers())
	p, ch := openProducer(t, b, driver.ProducerConfig{Idempotence: driver.IdempotenceAuto})
	assert.True(t, p.Idempotent(), "enable.idempotence is set when asked")

	const n = 200
	ctx := context.Background()
	for i := range n {
		r := &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Key: []byte("key-" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)),
			Headers: []polykafka.Header{{Key: "h", Value: []byte("v")}}}
		p.Produce(ctx, r, func(*polykafka.Record, error) {})
	}
	// nil key, empty key, empty value
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: 1, Value: []byte{}}, func(*polykafka.Record, error) {})
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: 2, Key: []byte{}, Value: nil}, func(*polykafka.Record, error) {})
	require.NoError(t, p.Flush(ctx))
	got := map[string]int32{}
	for range n + 2 {
		d := <-ch
		require.NoError(t, d.err)
		assert.GreaterOrEqual(t, d.r.Offset, int64(0))
		assert.False(t, d.r.Timestamp.IsZero())
		if len(d.r.Key) > 0 {
			got[string(d.r.Key)] = d.r.Partition
			assert.Equal(t, driver.KeyPartition(d.r.Key, 3), d.r.Partition, "partitioner=murmur2_random agrees with driver.KeyPartition for %q", d.r.Key)
		}
	}
	require.NoError(t, p.Close(ctx))

	h := &handler{}
	c := openConsumer(t, b, cl.Group(t), []string{topic}, h)
	defer closeConsumer(t, c)
	rs := fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) >= n+2 })
	var sawNilKey, sawEmptyKey bool
	for _, r := range rs {
		var m *kafka.Message
		require.True(t, r.As(&m), "Record.Native is a *kafka.Message")
		switch {
		case r.Key == nil:
			sawNilKey = true
			assert.NotNil(t, r.Value, "an empty value stays empty, not nil")
			assert.Empty(t, r.Value)
		case len(r.Key) == 0:
			sawEmptyKey = true
			assert.Nil(t, r.Value, "a nil value stays nil")
		default:
			assert.Equal(t, got[string(r.Key)], r.Partition)
			require.Len(t, r.Headers, 1)
			assert.Equal(t, "h", r.Headers[0].Key)
		}
	}
	assert.True(t, sawNilKey)
	assert.True(t, sawEmptyKey)
	// Records of one partition are consecutive and in order within a fetch
	// (checked over all, per partition).
	last := map[int32]int64{}
	for _, r := range rs {
		if o, ok := last[r.Partition]; ok {
			assert.Greater(t, r.Offset, o)
		}
		last[r.Partition] = r.Offset
	}
}

func TestKeyPartitionVectors(t *testing.T) {
	cl := testcluster.New(t)
	b := testBackendFor(cl.Brokers())
	for _, parts := range []int32{1, 3, 7, 16} {
		topic := cl.Topic(t, parts)
		p, ch := openProducer(t, b, driver.ProducerConfig{Idempotence: driver.IdempotenceOff})
		ctx := context.Background()
		const n = 300
		for i := range n {
			key := []byte(fmt.Sprintf("k%d-%x", i, i*7919))
			p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Key: key}, func(*polykafka.Record, error) {})
		}
		require.NoError(t, p.Flush(ctx))
		for range n {
			d := <-ch
			require.NoError(t, d.err)
			require.Equal(t, driver.KeyPartition(d.r.Key, parts), d.r.Partition, "key %q among %d partitions", d.r.Key, parts)
		}
		require.NoError(t, p.Close(ctx))
	}
}

func TestCommitCommittedListOffsets(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	before := time.Now().Add(-time.Second)
	for i := range 10 {
		cl.Produce(t, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte("x")})
	}
	b := testBackendFor(cl.Brokers())
	h := &handler{}
	c := openConsumer(t, b, cl.Group(t), []string{topic}, h)
	defer closeConsumer(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	counts, err := c.PartitionCounts(ctx, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, map[string]int32{topic: 2}, counts)
	_, err = c.PartitionCounts(ctx, []string{topic + "-missing"})
	require.Error(t, err)
	assert.Equal(t, polykafka.NotFound, c.ErrorCode(err), "a missing topic is NotFound: %v", err)

	tps := []polykafka.TopicPartition{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}}
	early, err := c.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
	require.NoError(t, err)
	late, err := c.ListOffsets(ctx, tps, polykafka.OffsetLatest)
	require.NoError(t, err)
	byTime, err := c.ListOffsets(ctx, tps, before.UnixMilli())
	require.NoError(t, err)
	future, err := c.ListOffsets(ctx, tps, time.Now().Add(time.Hour).UnixMilli())
	require.NoError(t, err)
	for _, tp := range tps {
		assert.Equal(t, int64(0), early[tp])
		assert.Equal(t, int64(5), late[tp])
		assert.Equal(t, int64(0), byTime[tp])
		assert.Equal(t, int64(-1), future[tp], "no record at or after the timestamp")
	}

	// Commits need the member's generation: wait for the assignment.
	fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) >= 10 })
	want := map[polykafka.TopicPartition]polykafka.CommittedOffset{
		tps[0]: {Offset: 3, Metadata: "polykafka:v1:baseline=2"},
		tps[1]: {Offset: 4, Metadata: "polykafka:v1:baseline=2"},
	}
	require.NoError(t, c.Commit(ctx, want))
	got, err := c.Committed(ctx, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestAssignedFailureLeavesPartitionsIdleUntilRejoin(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	for i := range 4 {
		cl.Produce(t, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte("x")})
	}
	b := testBackendFor(cl.Brokers())
	h := &handler{}
	h.fail.Store(true)
	c := openConsumer(t, b, cl.Group(t), []string{topic}, h)
	defer closeConsumer(t, c)

	// Fetch until Assigned has run (and failed); nothing is fetched.
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, _, _ := h.counts()
		if a > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no assignment within 20s")
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rs, err := c.Fetch(ctx, 100, nil)
		cancel()
		require.Empty(t, rs)
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
	}
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rs, _ := c.Fetch(ctx, 100, nil)
		cancel()
		require.Empty(t, rs, "partitions whose Assigned failed are never fetched (not at auto.offset.reset, not at a commit)")
	}
	h.fail.Store(false)
	require.NoError(t, c.Rejoin(context.Background(), map[string]int32{topic: 2}))
	rs := fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) >= 4 })
	assert.Len(t, rs, 4)
	a, r, _ := h.counts()
	assert.GreaterOrEqual(t, a, 2, "Rejoin made the group rebalance and Assigned run again")
	assert.GreaterOrEqual(t, r, 1, "the first assignment was revoked before the second")
}

func TestCloseRevokesAndCommits(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	cl.Produce(t, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("x")})
	group := cl.Group(t)
	b := testBackendFor(cl.Brokers())
	h := &handler{commit: map[polykafka.TopicPartition]polykafka.CommittedOffset{{Topic: topic, Partition: 0}: {Offset: 1, Metadata: "polykafka:v1:baseline=1"}}}
	c := openConsumer(t, b, group, []string{topic}, h)
	fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) >= 1 })
	closeConsumer(t, c)
	_, r, l := h.counts()
	assert.Equal(t, 1, r, "Close calls Revoked once")
	assert.Equal(t, 0, l)
	got := cl.Committed(t, group, topic)
	require.Contains(t, got, int32(0))
	assert.Equal(t, int64(1), got[0].At)
	assert.Equal(t, "polykafka:v1:baseline=1", got[0].Metadata, "commit metadata is written")

	var kc *kafka.Consumer
	assert.True(t, c.As(&kc))
	assert.Equal(t, polykafka.Closed, c.ErrorCode(c.Commit(context.Background(), h.commit)))
	_, err := c.Fetch(context.Background(), 1, nil)
	assert.Equal(t, polykafka.Closed, c.ErrorCode(err))
}

func TestProducerCloseDeliversEverything(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	b := testBackendFor(cl.Brokers())
	p, ch := openProducer(t, b, driver.ProducerConfig{Idempotence: driver.IdempotenceOff, Linger: time.Hour})
	const n = 1000
	ctx := context.Background()
	for i := range n {
		p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: []byte(strconv.Itoa(i))}, func(*polykafka.Record, error) {})
	}
	// A Close whose context has already ended purges: every record is
	// still reported, once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	_ = p.Close(cctx)
	assert.Less(t, time.Since(start), 5*time.Second, "Close is bounded")
	require.Len(t, ch, n, "Delivered was called for every record by the time Close returned")
	for range n {
		d := <-ch
		require.Error(t, d.err)
		assert.Equal(t, polykafka.Closed, p.ErrorCode(d.err), "a purged record is Closed: %v", d.err)
	}
	// Produce after Close reports Closed.
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition}, func(*polykafka.Record, error) {})
	d := <-ch
	assert.Equal(t, polykafka.Closed, p.ErrorCode(d.err))
}

func TestProduceToMissingPartition(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	b := testBackendFor(cl.Brokers())
	p, ch := openProducer(t, b, driver.ProducerConfig{Idempotence: driver.IdempotenceOff, ManualPartitions: true})
	defer func() { _ = p.Close(context.Background()) }()
	ctx := context.Background()
	_, err := p.PartitionCounts(ctx, []string{topic})
	require.NoError(t, err)
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: 1, Value: []byte("ok")}, func(*polykafka.Record, error) {})
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: 5, Value: []byte("bad")}, func(*polykafka.Record, error) {})
	require.NoError(t, p.Flush(ctx))
	for range 2 {
		select {
		case d := <-ch:
			if string(d.r.Value) == "ok" {
				require.NoError(t, d.err)
				assert.Equal(t, int32(1), d.r.Partition)
			} else {
				require.Error(t, d.err)
				t.Logf("partition 5 of 2: %v (%v)", d.err, p.ErrorCode(d.err))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery")
		}
	}
}

func TestGroupMetadataAndTransaction(t *testing.T) {
	cl := testcluster.New(t)
	in := cl.Topic(t, 1)
	out := cl.Topic(t, 1)
	cl.Produce(t, &kgo.Record{Topic: in, Partition: 0, Value: []byte("x")})
	group := cl.Group(t)
	b := testBackendFor(cl.Brokers())
	h := &handler{}
	c := openConsumer(t, b, group, []string{in}, h)
	defer closeConsumer(t, c)
	fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) >= 1 })

	gm, ok := c.(driver.GroupMember).GroupMetadata()
	require.True(t, ok)
	assert.Equal(t, group, gm.Group)
	assert.Positive(t, gm.Generation)
	assert.NotEmpty(t, gm.MemberID)
	// The adapter's encoding is librdkafka's.
	var kc *kafka.Consumer
	require.True(t, c.As(&kc))
	native, err := kc.GetConsumerGroupMetadata()
	require.NoError(t, err)
	enc, err := encodeGroupMetadata(gm)
	require.NoError(t, err)
	assert.Equal(t, *cgmdBytes(native), *cgmdBytes(enc))

	p, ch := openProducer(t, b, driver.ProducerConfig{TransactionalID: cl.Group(t)})
	defer func() { _ = p.Close(context.Background()) }()
	tx := p.(driver.Transactor)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, tx.BeginTransaction(ctx))
	p.Produce(ctx, &polykafka.Record{Topic: out, Partition: polykafka.AnyPartition, Value: []byte("y")}, func(*polykafka.Record, error) {})
	require.NoError(t, p.Flush(ctx))
	require.NoError(t, (<-ch).err)
	offs := map[polykafka.TopicPartition]polykafka.CommittedOffset{{Topic: in, Partition: 0}: {Offset: 1, Metadata: "polykafka:v1:baseline=1"}}
	require.NoError(t, tx.SendOffsets(ctx, gm, offs))
	require.NoError(t, tx.EndTransaction(ctx, true))
	got := cl.CommittedStable(t, group, in) // a real broker writes the markers after EndTxn answers
	require.Contains(t, got, int32(0))
	assert.Equal(t, int64(1), got[0].At)
	assert.Equal(t, "polykafka:v1:baseline=1", got[0].Metadata)

	// A stale generation is fenced.
	stale := gm
	stale.Generation--
	require.NoError(t, tx.BeginTransaction(ctx))
	err = tx.SendOffsets(ctx, stale, offs)
	if err == nil {
		err = tx.EndTransaction(ctx, true)
	} else {
		_ = tx.EndTransaction(ctx, false)
	}
	require.Error(t, err, "offsets of a stale generation are refused")
	t.Logf("stale generation: %v (%v)", err, p.ErrorCode(err))
}

func TestNonLeaderGrowthLatency(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	group := cl.Group(t)
	b := testBackendFor(cl.Brokers())
	h1, h2 := &handler{}, &handler{}
	c1 := openConsumer(t, b, group, []string{topic}, h1)
	defer closeConsumer(t, c1)
	// Both members fetch concurrently (librdkafka rebalances inside Poll).
	var stop atomic.Bool
	var mu sync.Mutex
	firstNew := map[int]time.Time{}
	var wg sync.WaitGroup
	run := func(i int, c driver.Consumer) {
		defer wg.Done()
		for !stop.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			rs, _ := c.Fetch(ctx, 100, nil)
			cancel()
			for _, r := range rs {
				if r.Partition >= 2 {
					mu.Lock()
					if _, ok := firstNew[i]; !ok {
						firstNew[i] = time.Now()
					}
					mu.Unlock()
				}
			}
		}
	}
	wg.Add(1)
	go run(1, c1)
	// c1 alone first: it leads the group.
	require.Eventually(t, func() bool { a, _, _ := h1.counts(); return a >= 1 }, 20*time.Second, 50*time.Millisecond)
	c2 := openConsumer(t, b, group, []string{topic}, h2)
	defer closeConsumer(t, c2)
	wg.Add(1)
	go run(2, c2)
	require.Eventually(t, func() bool { a, _, _ := h2.counts(); return a >= 1 }, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { a, _, _ := h1.counts(); return a >= 2 }, 20*time.Second, 50*time.Millisecond,
		"the leader was reassigned when the second member joined")

	cl.AddPartitions(t, topic, 4)
	grown := time.Now()
	cl.Produce(t, &kgo.Record{Topic: topic, Partition: 2, Value: []byte("n")}, &kgo.Record{Topic: topic, Partition: 3, Value: []byte("n")})
	// Only the non-leader notices.
	require.NoError(t, c2.Rejoin(context.Background(), map[string]int32{topic: 4}))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(firstNew) > 0 }, 30*time.Second, 20*time.Millisecond,
		"a non-leader's Rejoin makes the group assign the new partitions")
	mu.Lock()
	var first time.Time
	for _, at := range firstNew {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	mu.Unlock()
	t.Logf("non-leader growth: first record of a new partition consumed %v after CreatePartitions", first.Sub(grown))
	stop.Store(true)
	wg.Wait()
}

func TestCloseWhileJoining(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	b := testBackendFor(cl.Brokers())
	for i := range 40 {
		h := &handler{}
		c := openConsumer(t, b, cl.Group(t), []string{topic}, h)
		time.Sleep(time.Duration(i%20) * 15 * time.Millisecond) // vary where the join is when Close comes
		start := time.Now()
		closeConsumer(t, c)
		require.Less(t, time.Since(start), 5*time.Second, "iteration %d: Close while joining is bounded", i)
	}
}

func TestErrorCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want polykafka.ErrorCode
	}{
		{nil, polykafka.OK},
		{kafka.NewError(kafka.ErrAutoOffsetReset, "", false), polykafka.OffsetOutOfRange},
		{kafka.NewError(kafka.ErrUnknownTopicOrPart, "", false), polykafka.NotFound},
		{kafka.NewError(kafka.ErrUnknownTopic, "", false), polykafka.NotFound},
		{kafka.NewError(kafka.ErrUnknownPartition, "", false), polykafka.InvalidArgument},
		{kafka.NewError(kafka.ErrRebalanceInProgress, "", false), polykafka.Rebalancing},
		{kafka.NewError(kafka.ErrIllegalGeneration, "", false), polykafka.Rebalancing},
		{kafka.NewError(kafka.ErrTransport, "", false), polykafka.Unavailable},
		{kafka.NewError(kafka.ErrAllBrokersDown, "", false), polykafka.Unavailable},
		{kafka.NewError(kafka.ErrPurgeQueue, "", false), polykafka.Closed},
		{kafka.NewError(kafka.ErrTopicAuthorizationFailed, "", false), polykafka.PermissionDenied},
		{kafka.NewError(kafka.ErrNotImplemented, "", false), polykafka.Unimplemented},
		{kafka.NewError(kafka.ErrFenced, "", false), polykafka.Fenced},
		{fmt.Errorf("wrapped: %w", kafka.NewError(kafka.ErrNotCoordinator, "", false)), polykafka.Unavailable},
		{&driver.PartitionError{Err: kafka.NewError(kafka.ErrOffsetOutOfRange, "", false)}, polykafka.OffsetOutOfRange},
		{errClosed, polykafka.Closed},
		{errors.New("other"), polykafka.Unknown},
	} {
		assert.Equal(t, tc.want, errorCode(tc.err), "errorCode(%v)", tc.err)
	}
}

func TestGroupMetadataEncoding(t *testing.T) {
	for _, g := range []driver.GroupMetadata{
		{Group: "g", Generation: 7, MemberID: "m-1"},
		{Group: "g2", Generation: -1},
		{Group: "g3", Generation: 1 << 20, MemberID: "member", InstanceID: "static-1"},
	} {
		md, err := encodeGroupMetadata(g)
		require.NoError(t, err)
		got, err := decodeGroupMetadata(md)
		require.NoError(t, err)
		assert.Equal(t, g, got)
	}
}

func TestProducerCloseWithoutBroker(t *testing.T) {
	b := testBackendFor([]string{"127.0.0.1:1"})
	p, ch := openProducer(t, b, driver.ProducerConfig{Idempotence: driver.IdempotenceOff})
	p.Produce(context.Background(), &polykafka.Record{Topic: "t2", Partition: polykafka.AnyPartition, Value: []byte("v")}, func(*polykafka.Record, error) {})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_ = p.Close(ctx)
	t.Logf("Close took %v", time.Since(start))
	require.Len(t, ch, 1)
	d := <-ch
	t.Logf("record: %v (%v)", d.err, p.ErrorCode(d.err))
	assert.Less(t, time.Since(start), time.Second, "purge reports unsent records at once")
}

func TestConsumerCloseWithoutBroker(t *testing.T) {
	b := testBackendFor([]string{"127.0.0.1:1"})
	c := openConsumer(t, b, "g", []string{"t"}, &handler{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_ = c.Close(ctx)
	t.Logf("Close took %v", time.Since(start))
	assert.Less(t, time.Since(start), 3*time.Second, "Close without a broker is bounded")
}
