package kafkago_test

// Adapter-level tests: the driver interfaces used directly against a real
// Kafka protocol peer (testcluster), with a small GroupHandler.

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

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/kafkago"
	"github.com/polykafka/polykafka/internal/testcluster"
)

type tp = polykafka.TopicPartition

func tpOf(topic string, p int32) tp { return tp{Topic: topic, Partition: p} }

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("POLYKAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newTestBackend(cl *testcluster.Cluster) driver.Backend {
	return testBackend(nil, cl.Brokers())
}

// handler is a GroupHandler that starts every partition at start (or at
// 0), optionally commits the start, and records the calls.
type handler struct {
	mu       sync.Mutex
	failNext int // Assigned calls still to fail
	start    map[tp]int64
	commit   bool
	c        driver.Consumer
	ready    chan struct{}
	assigned [][]tp
	revoked  [][]tp
	owned    map[tp]bool
}

func newHandler() *handler {
	return &handler{ready: make(chan struct{}), owned: map[tp]bool{}, start: map[tp]int64{}}
}

func (h *handler) Assigned(ctx context.Context, tps []tp) (map[tp]polykafka.CommittedOffset, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h.mu.Lock()
	if h.failNext > 0 {
		h.failNext--
		h.assigned = append(h.assigned, slices.Clone(tps))
		h.mu.Unlock()
		return nil, errors.New("decision failed")
	}
	out := make(map[tp]polykafka.CommittedOffset, len(tps))
	for _, p := range tps {
		off, ok := h.start[p]
		if !ok {
			off = 0
		}
		if off >= 0 {
			out[p] = polykafka.CommittedOffset{Offset: off, Metadata: "polykafka:v1:baseline=1"}
		}
		h.owned[p] = true
	}
	h.assigned = append(h.assigned, slices.Clone(tps))
	commit := h.commit
	h.mu.Unlock()
	if commit {
		if err := h.c.Commit(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (h *handler) Revoked(ctx context.Context, tps []tp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range tps {
		delete(h.owned, p)
	}
	h.revoked = append(h.revoked, slices.Clone(tps))
}

func (h *handler) Lost(ctx context.Context, tps []tp) { h.Revoked(ctx, tps) }

func (h *handler) owns() []tp {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []tp
	for p := range h.owned {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b tp) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

func openConsumer(t *testing.T, b driver.Backend, group string, topics []string, h *handler) driver.Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := b.OpenConsumer(ctx, driver.ConsumerConfig{Group: group, Topics: topics, Handler: h, Logger: testLogger(t)})
	require.NoError(t, err)
	h.c = c
	close(h.ready)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		assert.NoError(t, c.Close(ctx), "Close")
	})
	return c
}

// eventually polls cond every 20ms for up to d.
func eventually(t *testing.T, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetcher is a driver.Consumer or a driver.Reader.
type fetcher interface {
	Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error)
}

// fetchUntil fetches until n records arrived or d passed, failing on any
// error, and checks that each Fetch result keeps partitions consecutive.
func fetchUntil(t *testing.T, c fetcher, n int, d time.Duration) []polykafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var all []polykafka.Record
	for len(all) < n {
		rs, err := c.Fetch(ctx, 1000, nil)
		if ctx.Err() != nil {
			t.Fatalf("fetched %d of %d records within %v", len(all), n, d)
		}
		require.NoError(t, err)
		seen := map[tp]bool{}
		for i, r := range rs {
			if i > 0 && rs[i-1].TopicPartition() != r.TopicPartition() {
				require.False(t, seen[r.TopicPartition()], "records of one partition are consecutive in one Fetch")
			}
			seen[r.TopicPartition()] = true
		}
		all = append(all, rs...)
	}
	return all
}

func produceN(t *testing.T, cl *testcluster.Cluster, topic string, partition int32, n int) {
	t.Helper()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprintf("%d-%d", partition, i))}
	}
	cl.Produce(t, rs...)
}

func TestStartsExactlyAtAssignedOffset(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 3)
	for p := int32(0); p < 3; p++ {
		produceN(t, cl, topic, p, 10)
	}
	h := newHandler()
	h.start[tpOf(topic, 0)] = 7
	h.start[tpOf(topic, 1)] = 0
	h.start[tpOf(topic, 2)] = -1 // not decided: never fetched
	c := openConsumer(t, newTestBackend(cl), testcluster.Name(t, "g"), []string{topic}, h)
	rs := fetchUntil(t, c, 13, 20*time.Second)
	byP := map[int32][]int64{}
	for _, r := range rs {
		byP[r.Partition] = append(byP[r.Partition], r.Offset)
		var mp *kafka.Message
		require.True(t, r.As(&mp), "Record.Native is a *kafka.Message")
		var m kafka.Message
		require.True(t, r.As(&m), "Record.As fills a kafka.Message too")
		assert.Equal(t, r.Offset, m.Offset)
		assert.Equal(t, r.Offset, mp.Offset)
	}
	assert.Equal(t, []int64{7, 8, 9}, byP[0], "partition 0 starts exactly at the decided offset")
	assert.Len(t, byP[1], 10, "partition 1 starts at 0")
	assert.Empty(t, byP[2], "a partition without a decision is never fetched")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	more, _ := c.Fetch(ctx, 100, nil)
	assert.Empty(t, more)
}

func TestCommitCarriesMetadata(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	group := testcluster.Name(t, "g")
	h := newHandler()
	h.commit = true
	c := openConsumer(t, newTestBackend(cl), group, []string{topic}, h)
	eventually(t, 20*time.Second, "both partitions assigned", func() bool { return len(h.owns()) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.Committed(ctx, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, map[tp]polykafka.CommittedOffset{
		tpOf(topic, 0): {Offset: 0, Metadata: "polykafka:v1:baseline=1"},
		tpOf(topic, 1): {Offset: 0, Metadata: "polykafka:v1:baseline=1"},
	}, got, "commits made in Assigned carry their metadata")
	require.NoError(t, c.Commit(ctx, map[tp]polykafka.CommittedOffset{tpOf(topic, 1): {Offset: 0, Metadata: "m2"}}))
	raw := cl.Committed(t, group, topic)
	assert.Equal(t, "m2", raw[1].Metadata, "the broker stores the metadata")
}

func TestListOffsetsAndPartitionCounts(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	before := time.Now().Add(-time.Second)
	produceN(t, cl, topic, 0, 5)
	h := newHandler()
	c := openConsumer(t, newTestBackend(cl), testcluster.Name(t, "g"), []string{topic}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tps := []tp{tpOf(topic, 0), tpOf(topic, 1)}
	end, err := c.ListOffsets(ctx, tps, polykafka.OffsetLatest)
	require.NoError(t, err)
	assert.Equal(t, map[tp]int64{tpOf(topic, 0): 5, tpOf(topic, 1): 0}, end)
	start, err := c.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
	require.NoError(t, err)
	assert.Equal(t, map[tp]int64{tpOf(topic, 0): 0, tpOf(topic, 1): 0}, start)
	at, err := c.ListOffsets(ctx, tps, before.UnixMilli())
	require.NoError(t, err)
	assert.Equal(t, map[tp]int64{tpOf(topic, 0): 0, tpOf(topic, 1): -1}, at)

	counts, err := c.PartitionCounts(ctx, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, map[string]int32{topic: 2}, counts)
	cl.AddPartitions(t, topic, 4)
	counts, err = c.PartitionCounts(ctx, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, map[string]int32{topic: 4}, counts, "PartitionCounts is never cached")
	added, err := c.ListOffsets(ctx, []tp{tpOf(topic, 3)}, polykafka.OffsetEarliest)
	require.NoError(t, err, "ListOffsets routes partitions created moments ago")
	assert.Equal(t, map[tp]int64{tpOf(topic, 3): 0}, added)

	_, err = c.PartitionCounts(ctx, []string{topic, "no-such-topic-" + topic})
	require.Error(t, err)
	assert.Equal(t, polykafka.NotFound, c.ErrorCode(err), "a missing topic is NotFound: %v", err)
}

// TestRejoinRebalancesWithoutLeader defeats kafka-go#646: a member that is
// not the leader and rejoins with unchanged metadata gets the same
// generation back, so new partitions are never assigned. Each member in
// turn notices growth alone (one of them is not the leader).
func TestRejoinRebalancesWithoutLeader(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	group := testcluster.Name(t, "g")
	b := newTestBackend(cl)
	h1, h2 := newHandler(), newHandler()
	c1 := openConsumer(t, b, group, []string{topic}, h1)
	eventually(t, 20*time.Second, "first member owns both partitions", func() bool { return len(h1.owns()) == 2 })
	c2 := openConsumer(t, b, group, []string{topic}, h2)
	eventually(t, 20*time.Second, "members split the partitions", func() bool { return len(h1.owns()) == 1 && len(h2.owns()) == 1 })

	total := int32(2)
	for i, c := range []driver.Consumer{c1, c2, c2, c1} {
		total++
		cl.AddPartitions(t, topic, total)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, c.Rejoin(ctx, map[string]int32{topic: total}))
		cancel()
		eventually(t, 20*time.Second, fmt.Sprintf("step %d: %d partitions assigned after one member's Rejoin", i, total), func() bool {
			return len(h1.owns())+len(h2.owns()) == int(total)
		})
	}
}

// TestLeaderAssignsTopicsItDoesNotRead defeats kafka-go#1351: the leader
// must plan for topics only other members subscribe to, including their
// new partitions.
func TestLeaderAssignsTopicsItDoesNotRead(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	t1, t2 := cl.Topic(t, 1), cl.Topic(t, 1)
	group := testcluster.Name(t, "g")
	b := newTestBackend(cl)
	leader, other := newHandler(), newHandler()
	openConsumer(t, b, group, []string{t1}, leader)
	eventually(t, 20*time.Second, "the first member (the leader) owns t1", func() bool { return len(leader.owns()) == 1 })
	c2 := openConsumer(t, b, group, []string{t1, t2}, other)
	eventually(t, 20*time.Second, "the second member owns t2/0", func() bool { return slices.Contains(other.owns(), tpOf(t2, 0)) })
	produceN(t, cl, t2, 0, 1)
	cl.AddPartitions(t, t2, 3)
	produceN(t, cl, t2, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c2.Rejoin(ctx, map[string]int32{t1: 1, t2: 3}))
	eventually(t, 20*time.Second, "the member reading t2 owns its new partitions", func() bool {
		o := other.owns()
		return slices.Contains(o, tpOf(t2, 1)) && slices.Contains(o, tpOf(t2, 2))
	})
	rs := fetchUntil(t, c2, 4, 20*time.Second)
	n := 0
	for _, r := range rs {
		if r.Topic == t2 {
			n++
		}
	}
	assert.Equal(t, 4, n, "every record of t2 is read")
}

func TestPauseResumeSeek(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	produceN(t, cl, topic, 0, 5)
	produceN(t, cl, topic, 1, 5)
	h := newHandler()
	c := openConsumer(t, newTestBackend(cl), testcluster.Name(t, "g"), []string{topic}, h)
	eventually(t, 20*time.Second, "assigned", func() bool { return len(h.owns()) == 2 })
	p := c.(driver.Pauser)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Pause(ctx, []tp{tpOf(topic, 1)}))
	rs := fetchUntil(t, c, 5, 10*time.Second)
	produceN(t, cl, topic, 1, 2)
	more, _ := func() ([]polykafka.Record, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Fetch(ctx, 100, nil)
	}()
	for _, r := range more {
		assert.NotEqual(t, int32(1), r.Partition, "a paused partition delivers nothing")
	}
	require.NoError(t, p.Resume(ctx, []tp{tpOf(topic, 1)}))
	var p1 []int64
	for _, r := range append(rs, fetchUntil(t, c, 7-countP(rs, 1), 10*time.Second)...) {
		if r.Partition == 1 {
			p1 = append(p1, r.Offset)
		}
	}
	assert.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6}, p1, "resume goes on at the first record not returned")

	require.NoError(t, c.(driver.Seeker).Seek(ctx, map[tp]int64{tpOf(topic, 0): 2}))
	rs = fetchUntil(t, c, 3, 10*time.Second)
	var p0 []int64
	for _, r := range rs {
		p0 = append(p0, r.Offset)
	}
	assert.Equal(t, []int64{2, 3, 4}, p0, "Seek restarts the partition at the offset")
}

func countP(rs []polykafka.Record, p int32) int {
	n := 0
	for _, r := range rs {
		if r.Partition == p {
			n++
		}
	}
	return n
}

func TestOutOfRangeReportedOnce(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	produceN(t, cl, topic, 0, 3)
	h := newHandler()
	h.start[tpOf(topic, 0)] = 50
	c := openConsumer(t, newTestBackend(cl), testcluster.Name(t, "g"), []string{topic}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for err == nil && ctx.Err() == nil {
		_, err = c.Fetch(ctx, 10, nil)
	}
	require.Error(t, err)
	parts, rest := driver.PartitionErrors(err)
	require.NoError(t, rest)
	require.Len(t, parts, 1)
	assert.Equal(t, tpOf(topic, 0), parts[0].TopicPartition)
	assert.Equal(t, polykafka.OffsetOutOfRange, c.ErrorCode(err))
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	rs, err := c.Fetch(short, 10, nil)
	assert.Empty(t, rs)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "out of range is reported once and the partition is not fetched again")
	require.NoError(t, c.(driver.Seeker).Seek(ctx, map[tp]int64{tpOf(topic, 0): 1}))
	rs = fetchUntil(t, c, 2, 10*time.Second)
	assert.Equal(t, int64(1), rs[0].Offset, "Seek fetches again")
}

func TestProducer(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 4)
	b := newTestBackend(cl)
	var mu sync.Mutex
	delivered := map[*polykafka.Record]int{}
	var errs []error
	cfg := driver.ProducerConfig{Acks: -1, Idempotence: driver.IdempotenceOff, ManualPartitions: true, Logger: testLogger(t),
		Delivered: func(r *polykafka.Record, err error, done func(*polykafka.Record, error)) {
			mu.Lock()
			delivered[r]++
			mu.Unlock()
			done(r, err)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err := b.OpenProducer(ctx, driver.ProducerConfig{Acks: -1, Idempotence: driver.IdempotenceRequired, Delivered: cfg.Delivered, Logger: cfg.Logger})
	assert.Equal(t, polykafka.Unimplemented, polykafka.Code(err), "kafka-go has no idempotent producer")
	_, err = b.OpenProducer(ctx, driver.ProducerConfig{Acks: -1, TransactionalID: "x", Delivered: cfg.Delivered, Logger: cfg.Logger})
	assert.Equal(t, polykafka.Unimplemented, polykafka.Code(err), "kafka-go has no transactional producer")
	cfg.Idempotence = driver.IdempotenceAuto
	p, err := b.OpenProducer(ctx, cfg)
	require.NoError(t, err)
	assert.False(t, p.Idempotent())

	send := func(r *polykafka.Record) error {
		ch := make(chan error, 1)
		p.Produce(ctx, r, func(_ *polykafka.Record, err error) { ch <- err })
		return <-ch
	}
	// A synchronous send with Linger 0 does not wait out kafka-go's 1 s
	// BatchTimeout (kafka-go#417).
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		r := &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte("v")}
		require.NoError(t, send(r))
		assert.Less(t, time.Since(t0), 500*time.Millisecond, "a single send is not held for a batch timeout")
		assert.Equal(t, driver.KeyPartition(r.Key, 4), r.Partition, "keys land on murmur2(key) mod n")
		assert.False(t, r.Timestamp.IsZero())
	}
	own := &polykafka.Record{Topic: topic, Partition: 2, Key: []byte("key-0"), Value: []byte("own")}
	require.NoError(t, send(own))
	assert.Equal(t, int32(2), own.Partition, "a record's own partition wins")
	bad := &polykafka.Record{Topic: topic, Partition: 9, Value: []byte("x")}
	err = send(bad)
	require.Error(t, err)
	assert.Equal(t, polykafka.InvalidArgument, p.ErrorCode(err))

	// Async records: every Delivered exactly once by Close.
	var rs []*polykafka.Record
	for i := 0; i < 200; i++ {
		r := &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Key: []byte(fmt.Sprint(i)), Value: []byte("a")}
		rs = append(rs, r)
		p.Produce(ctx, r, func(_ *polykafka.Record, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	require.NoError(t, p.Close(ctx))
	mu.Lock()
	assert.Empty(t, errs)
	for _, r := range append(rs, own, bad) {
		assert.Equal(t, 1, delivered[r], "Delivered exactly once")
	}
	mu.Unlock()
	var w *kafka.Writer
	assert.True(t, p.As(&w))
	assert.NotNil(t, w)
	assert.False(t, p.As(nil))
	r := &polykafka.Record{Topic: topic, Value: []byte("late")}
	var lateErr error
	p.Produce(ctx, r, func(_ *polykafka.Record, err error) { lateErr = err })
	assert.Equal(t, polykafka.Closed, p.ErrorCode(lateErr))
	assert.True(t, errors.Is(lateErr, lateErr), "late error: %v", lateErr)
}

func TestConsumerAs(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	h := newHandler()
	c := openConsumer(t, newTestBackend(cl), testcluster.Name(t, "g"), []string{topic}, h)
	eventually(t, 20*time.Second, "assigned", func() bool { return len(h.owns()) == 1 })
	var cg *kafka.ConsumerGroup
	var gen *kafka.Generation
	var client *kafka.Client
	assert.True(t, c.As(&cg) && cg != nil)
	assert.True(t, c.As(&gen) && gen != nil)
	assert.True(t, c.As(&client) && client != nil)
	assert.False(t, c.As(nil))
	md, ok := c.(driver.GroupMember).GroupMetadata()
	assert.True(t, ok)
	assert.Equal(t, gen.MemberID, md.MemberID)
}

// A read-committed consumer skips the records of aborted transactions
// (written here by franz-go: kafka-go has no transactional producer), and
// a read-uncommitted one reads them.
func TestReadCommittedSkipsAbortedTransactions(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	tx, err := kgo.NewClient(kgo.SeedBrokers(cl.Brokers()...), kgo.TransactionalID(testcluster.Name(t, "tx")), kgo.DefaultProduceTopic(topic))
	require.NoError(t, err)
	defer tx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	txn := func(tag string, commit bool) {
		require.NoError(t, tx.BeginTransaction())
		for i := 0; i < 3; i++ {
			require.NoError(t, tx.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte(fmt.Sprintf("%s-%d", tag, i))}).FirstErr())
		}
		end := kgo.TryAbort
		if commit {
			end = kgo.TryCommit
		}
		require.NoError(t, tx.EndTransaction(ctx, end))
	}
	txn("c1", true)
	txn("a", false)
	txn("c2", true)
	produceN(t, cl, topic, 0, 1) // not transactional

	b := newTestBackend(cl)
	read := func(committed bool, n int) []string {
		h := newHandler()
		c, err := b.OpenConsumer(ctx, driver.ConsumerConfig{Group: testcluster.Name(t, "g"), Topics: []string{topic}, Handler: h, ReadCommitted: committed, Logger: testLogger(t)})
		require.NoError(t, err)
		h.c = c
		close(h.ready)
		defer func() { assert.NoError(t, c.Close(ctx)) }()
		var vals []string
		for _, r := range fetchUntil(t, c, n, 20*time.Second) {
			vals = append(vals, string(r.Value))
		}
		return vals
	}
	assert.Equal(t, []string{"c1-0", "c1-1", "c1-2", "c2-0", "c2-1", "c2-2", "0-0"}, read(true, 7), "read committed")
	assert.Len(t, read(false, 10), 10, "read uncommitted reads aborted records too")
}

// After a failed Assigned the partitions stay idle; Rejoin with nil counts
// makes Assigned run again (even for a member whose rejoin changes nothing
// in its join metadata), and fetching starts.
func TestRejoinNilRunsAssignedAgain(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	produceN(t, cl, topic, 0, 3)
	produceN(t, cl, topic, 1, 3)
	group := testcluster.Name(t, "g")
	b := newTestBackend(cl)
	other := newHandler()
	openConsumer(t, b, group, []string{topic}, other)
	eventually(t, 20*time.Second, "the first member owns both partitions", func() bool { return len(other.owns()) == 2 })
	h := newHandler()
	h.failNext = 1
	c := openConsumer(t, b, group, []string{topic}, h)
	eventually(t, 20*time.Second, "Assigned was called and failed", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.assigned) == 1
	})
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	rs, _ := c.Fetch(short, 10, nil)
	assert.Empty(t, rs, "partitions whose Assigned failed are not fetched")
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	require.NoError(t, c.Rejoin(ctx, nil))
	eventually(t, 20*time.Second, "Assigned ran again and succeeded", func() bool { return len(h.owns()) == 1 })
	assert.Len(t, fetchUntil(t, c, 3, 10*time.Second), 3)
}

// kafka.Writer buffers without bound: the producer holds at most
// Options.MaxBufferedRecords undelivered records, and a send waits for
// room until its context ends.
func TestProducerBoundsBufferedRecords(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	fake := cl.Fake()
	if fake == nil {
		t.Skip("needs the in-process cluster to hold a produce request")
	}
	topic := cl.Topic(t, 1)
	b := kafkago.New(polykafka.Connection{Brokers: cl.Brokers()}, &kafkago.Options{MaxBufferedRecords: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.OpenProducer(ctx, driver.ProducerConfig{Acks: -1, Idempotence: driver.IdempotenceOff, Logger: testLogger(t),
		Delivered: func(r *polykafka.Record, err error, done func(*polykafka.Record, error)) { done(r, err) }})
	require.NoError(t, err)
	defer p.Close(ctx)

	release := make(chan struct{})
	var held atomic.Bool
	fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			fake.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	first := make(chan error, 1)
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: []byte("1")}, func(_ *polykafka.Record, err error) { first <- err })
	eventually(t, 10*time.Second, "the first produce request is held", held.Load)

	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	second := make(chan error, 1)
	t0 := time.Now()
	p.Produce(short, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: []byte("2")}, func(_ *polykafka.Record, err error) { second <- err })
	assert.ErrorIs(t, <-second, context.DeadlineExceeded, "a send waits for room until its context ends")
	assert.GreaterOrEqual(t, time.Since(t0), 250*time.Millisecond)

	close(release)
	require.NoError(t, <-first)
	third := make(chan error, 1)
	p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: []byte("3")}, func(_ *polykafka.Record, err error) { third <- err })
	require.NoError(t, <-third, "room again after the delivery")

	// More concurrent senders than places: none starves.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ch := make(chan error, 1)
				p.Produce(ctx, &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: []byte("x")}, func(_ *polykafka.Record, err error) { ch <- err })
				if <-ch != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, failed.Load(), "every concurrent send is delivered")
}

// TestProducerBatchErrorStaysPerRecord: records sent in a burst reach the
// Writer together (one WriteMessages call for what queued up), and a
// record the Writer refuses (larger than BatchBytes) fails alone: the
// records around it are delivered.
func TestProducerBatchErrorStaysPerRecord(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := newTestBackend(cl).OpenProducer(ctx, driver.ProducerConfig{Acks: -1, Compression: "none", BatchBytes: 1000,
		Logger: testLogger(t), Delivered: func(r *polykafka.Record, err error, done func(*polykafka.Record, error)) { done(r, err) }})
	require.NoError(t, err)
	var mu sync.Mutex
	results := map[*polykafka.Record]error{}
	var wg sync.WaitGroup
	var rs []*polykafka.Record
	big := &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: make([]byte, 5000)}
	for i := 0; i < 200; i++ {
		r := &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Value: []byte(fmt.Sprint(i))}
		if i == 100 {
			r = big
		}
		rs = append(rs, r)
		wg.Add(1)
		p.Produce(ctx, r, func(r *polykafka.Record, err error) {
			mu.Lock()
			results[r] = err
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	require.NoError(t, p.Close(ctx))
	for _, r := range rs {
		if r == big {
			assert.Error(t, results[r], "the record over BatchBytes fails")
		} else {
			assert.NoError(t, results[r], "a record sent next to a refused one is delivered")
		}
	}
}
