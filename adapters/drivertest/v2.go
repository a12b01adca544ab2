package drivertest

// Cases added with contract v2: policies that moved into the portable
// layer (out-of-range, commit on revoke, RunBatch), transactions, and the
// defects found trying the library as a new user would.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/producer"
)

// countGate wraps a backend so that, while the gate is closed, the
// consumers it opens report partition counts no larger than the frozen
// ones: the portable layer (discovery, decisions) does not see growth
// until the test opens the gate. It stands in for the discovery interval
// at a chosen moment, so a case can make records exist on new partitions
// before their start decision.
type countGate struct {
	driver.Backend
	open   atomic.Bool
	frozen map[string]int32
	polls  atomic.Int64
}

func (g *countGate) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	d, err := g.Backend.OpenConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &gatedConsumer{Consumer: d, g: g}, nil
}

type gatedConsumer struct {
	driver.Consumer
	g *countGate
}

func (c *gatedConsumer) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	return c.g.view(c.Consumer.PartitionCounts(ctx, topics))
}

// view counts one poll and, while the gate is closed, caps counts at the
// frozen ones.
func (g *countGate) view(counts map[string]int32, err error) (map[string]int32, error) {
	g.polls.Add(1)
	if err != nil || g.open.Load() {
		return counts, err
	}
	for t, n := range counts {
		if f, ok := g.frozen[t]; ok && f < n {
			counts[t] = f
		}
	}
	return counts, nil
}

func testNewPartitionUnderLoad(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	e.produce(topic, "old", 5, 0, 1)
	gate := &countGate{Backend: e.backend, frozen: map[string]int32{topic: 2}}
	s, d := newSink(), newDecisions()
	c, err := consumer.New(e.ctx(wait), gate, group, []string{topic}, e.consumerOpts(&consumer.Options{Hooks: []any{d}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	e.run(c, s.handler)
	e.assigned(wait, topic, 2, c)

	lp := e.startLoad(topic, 2, 5*time.Millisecond)
	e.eventually(wait, func() bool { return lp.count() >= 50 }, "the load producer made no progress")
	e.cluster.AddPartitions(t, topic, 4)
	lp.partitions.Store(4)
	// The new partitions fill up while the consumer cannot see them: at
	// their decision, latest and earliest are far apart.
	before := lp.count()
	e.eventually(wait, func() bool { return lp.count() >= before+200 }, "the load producer made no progress after growth")
	gate.open.Store(true)
	e.eventually(wait, func() bool { return lp.count() >= before+400 }, "the load producer stalled")
	produced := lp.finish(t)

	e.received(s, produced, "records produced while the topic grew")
	e.assigned(wait, topic, 4, c)
	for p := int32(2); p < 4; p++ {
		dec, ok := d.get(topic, p)
		require.True(t, ok, "%s: no start decision for new partition %d", e.rule, p)
		assert.Equal(t, discovery.ReasonNewPartition, dec.Reason, "%s: reason of new partition %d", e.rule, p)
		assert.Equal(t, discovery.Earliest, dec.Policy, "%s: policy of new partition %d", e.rule, p)
		assert.Zero(t, dec.Offset, "%s: new partition %d starts at offset 0 although it held records at its decision", e.rule, p)
		offs := s.offsets(polykafka.TopicPartition{Topic: topic, Partition: p})
		if assert.NotEmpty(t, offs, "%s: nothing read from new partition %d", e.rule, p) {
			assert.Zero(t, offs[0], "%s: the first record read from new partition %d is its first record", e.rule, p)
		}
	}
}

// noSeek hides the driver's optional interfaces except Pauser, so that
// the portable layer takes its path for backends without Seeker.
type noSeek struct{ driver.Backend }

func (b noSeek) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	d, err := b.Backend.OpenConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if p, ok := d.(driver.Pauser); ok {
		return struct {
			driver.Consumer
			driver.Pauser
		}{d, p}, nil
	}
	return struct{ driver.Consumer }{d}, nil
}

func testOutOfRangeSeek(t *testing.T, e *env)   { outOfRange(t, e, e.backend) }
func testOutOfRangeRejoin(t *testing.T, e *env) { outOfRange(t, e, noSeek{e.backend}) }

// outOfRange truncates a partition under a consumer whose fetch position
// is before the new log start, and checks that Options.OutOfRange (here
// latest, which no client applies by default) decides where it goes on.
func outOfRange(t *testing.T, e *env, b driver.Backend) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.produce(topic, "a", 10, 0)
	s, d := newSink(), newDecisions()
	c, err := consumer.New(e.ctx(wait), b, group, []string{topic},
		e.consumerOpts(&consumer.Options{Initial: discovery.Earliest, OutOfRange: discovery.Latest, Hooks: []any{d}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	e.run(c, s.handler)
	e.eventually(wait, func() bool { return len(s.offsets(tp)) >= 10 }, "the first 10 records were not consumed")

	require.NoError(t, c.Pause(e.ctx(wait), tp), "%s: Pause (the case needs it to hold the fetch position back)", e.rule)
	// One record per produce request: a fetch that was already waiting on
	// the broker when Pause returned (clients do not recall it) takes only
	// the first few, which the consumer may deliver after Resume since they
	// were read before the truncation; every later fetch leaves p0 alone.
	for i := 0; i < 90; i++ { // offsets 10..99
		e.produce(topic, fmt.Sprintf("b%d", i), 1, 0)
	}
	e.cluster.DeleteRecords(t, topic, 0, 50)
	require.NoError(t, c.Resume(e.ctx(wait), tp))

	e.eventuallyf(wait, func() bool {
		_, ok := d.last(topic, 0, discovery.ReasonOutOfRange)
		return ok
	}, func() string {
		return fmt.Sprintf("no out-of-range decision after the log start moved past the fetch position; read %v", s.offsets(tp))
	})
	dec, _ := d.last(topic, 0, discovery.ReasonOutOfRange)
	assert.Equal(t, discovery.Latest, dec.Policy, "%s: the OutOfRange policy applies", e.rule)
	assert.Equal(t, int64(100), dec.Offset, "%s: latest is the end of the log", e.rule)

	want := e.produce(topic, "c", 5, 0) // offsets 100..104
	e.received(s, want, "records after the out-of-range decision")
	var early, after []int64
	for _, o := range s.offsets(tp) {
		switch {
		case o >= 50:
			after = append(after, o)
		case o >= 10:
			early = append(early, o)
		}
	}
	assert.Equal(t, []int64{100, 101, 102, 103, 104}, after,
		"%s: after the truncation the consumer goes on where OutOfRange says (latest), not at the log start (50)", e.rule)
	for i, o := range early {
		// Read before the truncation by a fetch already in flight.
		assert.Equal(t, int64(10+i), o, "%s: records read before the truncation come in order, once", e.rule)
	}
}

func testCommitOnRevoke(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 4), e.cluster.Group(t)
	e.produce(topic, "a", 10, 0, 1, 2, 3)
	opts := consumer.Options{Initial: discovery.Earliest, Commit: consumer.CommitManual}
	sa := newSink()
	a := e.newConsumer(group, []string{topic}, &opts)
	e.run(a, sa.handler)
	e.eventually(wait, func() bool { return sa.total() >= 40 }, "the first member did not read 40 records")

	sb := newSink()
	b := e.newConsumer(group, []string{topic}, &opts)
	e.run(b, sb.handler)
	e.eventually(wait, func() bool { return len(b.Assignment()) == 2 && len(a.Assignment()) == 2 }, "two members did not split 4 partitions 2/2")
	committed := e.positions(t, group, topic)
	for _, tp := range b.Assignment() {
		assert.Equal(t, int64(10), committed[tp.Partition].Offset,
			"%s: the partition %s moved to the new member with the old member's progress committed (CommitManual: only revoke commits)", e.rule, tp)
	}
	more := e.produce(topic, "b", 5, 0, 1, 2, 3)
	e.eventually(wait, func() bool { return len(union(sa, sb).missing(more)) == 0 }, "the records produced after the rebalance were not all read")
	for _, tp := range b.Assignment() {
		assert.Equal(t, []int64{10, 11, 12, 13, 14}, sb.offsets(tp), "%s: the new owner of %s starts after the revoked member's progress", e.rule, tp)
	}
}

// union returns a sink holding the records of both.
func union(ss ...*sink) *sink {
	out := newSink()
	for _, s := range ss {
		s.mu.Lock()
		for _, rs := range s.recs {
			for i := range rs {
				out.add(rs[i])
			}
		}
		s.mu.Unlock()
	}
	return out
}

func testDuplicatesBounded(t *testing.T, e *env) {
	const partitions = 4
	topic, group := e.cluster.Topic(t, partitions), e.cluster.Group(t)
	s := newSink()
	a := e.newConsumer(group, []string{topic}, nil)
	e.run(a, s.handler)
	e.assigned(wait, topic, partitions, a)
	lp := e.startLoad(topic, partitions, 5*time.Millisecond)
	e.eventually(wait, func() bool { return lp.count() >= 100 }, "the load producer made no progress")

	b := e.newConsumer(group, []string{topic}, nil)
	e.run(b, s.handler)
	e.eventually(wait, func() bool { return len(b.Assignment()) == 2 && len(a.Assignment()) == 2 }, "two members did not split the partitions")
	mid := lp.count()
	e.eventually(wait, func() bool { return lp.count() >= mid+100 }, "the load producer stalled")
	require.NoError(t, b.Close())
	e.assigned(wait, topic, partitions, a)
	end := lp.count()
	e.eventually(wait, func() bool { return lp.count() >= end+100 }, "the load producer stalled after the leave")
	produced := lp.finish(t)
	e.received(s, produced, "records produced across two rebalances")

	s.mu.Lock()
	dups := 0
	for _, n := range s.count {
		dups += n - 1
	}
	s.mu.Unlock()
	// Each clean rebalance commits what was processed; only a record in
	// the handler while its partition is revoked can be read again, at
	// most one per partition per rebalance.
	bound := 2 * partitions
	t.Logf("%s: %d duplicate deliveries of %d records across 2 rebalances", e.rule, dups, len(produced))
	assert.LessOrEqual(t, dups, bound, "%s: duplicates after clean rebalances stay within the uncommitted window (one in-flight record per revoked partition)", e.rule)
}

func testRunBatch(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	want := e.produce(topic, "v", 50, 0, 1)
	var mu sync.Mutex
	var bad []string
	s := newSink()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, MaxPollRecords: 7})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- c.RunBatch(ctx, func(_ context.Context, rs []polykafka.Record) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case len(rs) == 0:
				bad = append(bad, "an empty batch")
			case len(rs) > 7:
				bad = append(bad, fmt.Sprintf("a batch of %d records (MaxPollRecords 7)", len(rs)))
			}
			for i, r := range rs {
				if r.TopicPartition() != rs[0].TopicPartition() {
					bad = append(bad, "a batch mixing partitions")
				}
				if i > 0 && r.Offset != rs[i-1].Offset+1 {
					bad = append(bad, fmt.Sprintf("a gap or disorder in a batch: %d after %d", r.Offset, rs[i-1].Offset))
				}
				s.add(r)
			}
			return nil
		})
	}()
	e.received(s, want, "records read by RunBatch")
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "%s: RunBatch returns nil when its context is cancelled", e.rule)
	case <-time.After(wait):
		t.Fatalf("%s: RunBatch did not return after its context was cancelled", e.rule)
	}
	mu.Lock()
	assert.Empty(t, bad, "%s: batches hold consecutive records of one partition, in order, at most MaxPollRecords", e.rule)
	mu.Unlock()
	for k, n := range s.count {
		assert.Equal(t, 1, n, "%s: %s delivered once", e.rule, k)
	}

	// A failing batch stops the consumer; what came before it is committed,
	// nothing of it.
	group2 := e.cluster.Group(t)
	c2 := e.newConsumer(group2, []string{topic}, &consumer.Options{Initial: discovery.Earliest, MaxPollRecords: 7})
	var failedFirst atomic.Int64
	failedFirst.Store(-1)
	err := c2.RunBatch(e.ctx(wait), func(_ context.Context, rs []polykafka.Record) error {
		if rs[0].Partition == 0 && rs[len(rs)-1].Offset >= 20 {
			failedFirst.Store(rs[0].Offset)
			return errHandler
		}
		return nil
	})
	require.ErrorIs(t, err, errHandler, "%s: RunBatch returns the failing batch's error", e.rule)
	ff := failedFirst.Load()
	require.GreaterOrEqual(t, ff, int64(0))
	assert.Equal(t, ff, e.positions(t, group2, topic)[0].Offset,
		"%s: the commit stops right before the failed batch", e.rule)
}

func testTransactions(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	txID := "tx-" + e.cluster.Group(t)
	if !e.h.Transactions {
		_, err := producer.New(e.ctx(wait), e.backend, &producer.Options{TransactionalID: txID, Logger: e.logger})
		requireCode(t, e, err, polykafka.Unimplemented, "a transactional producer on a backend without transactions")
		return
	}
	p := e.newProducer(&producer.Options{TransactionalID: txID})
	ctx := e.ctx(wait)
	send := func(tag string, n int) []string {
		var vals []string
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d", tag, i)
			vals = append(vals, v)
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}, func(_ *polykafka.Record, err error) {
				assert.NoError(t, err, "%s: a record of an open transaction is delivered", e.rule)
			})
		}
		return vals
	}
	require.NoError(t, p.BeginTransaction(ctx))
	committed := send("committed1", 10)
	require.NoError(t, p.CommitTransaction(ctx), "%s: CommitTransaction", e.rule)
	require.NoError(t, p.BeginTransaction(ctx))
	aborted := send("aborted", 10)
	require.NoError(t, p.AbortTransaction(ctx), "%s: AbortTransaction", e.rule)
	require.NoError(t, p.BeginTransaction(ctx))
	committed = append(committed, send("committed2", 10)...)
	require.NoError(t, p.CommitTransaction(ctx))

	s := newSink()
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, &consumer.Options{Initial: discovery.Earliest, ReadCommitted: true})
	e.run(c, s.handler)
	e.received(s, committed, "records of committed transactions")
	// The last committed records came after the aborted ones in every
	// partition, so by now the aborted ones would have been read.
	e.noneOf(s, aborted, "a read-committed consumer delivered records of an aborted transaction")

	// Consume-transform-produce: the input offsets commit with the output.
	out := e.cluster.Topic(t, 1)
	in := e.cluster.Group(t)
	tc := e.newConsumer(in, []string{topic}, &consumer.Options{Initial: discovery.Earliest, ReadCommitted: true, Commit: consumer.CommitTransactional})
	polled := 0
	for polled < len(committed) {
		rs, err := tc.Poll(ctx)
		require.NoError(t, err)
		require.NoError(t, p.BeginTransaction(ctx))
		for _, r := range rs {
			p.SendAsync(ctx, &polykafka.Record{Topic: out, Value: r.Value}, nil)
		}
		tc.Mark(rs...)
		require.NoError(t, p.SendOffsets(ctx, tc), "%s: SendOffsets", e.rule)
		require.NoError(t, p.CommitTransaction(ctx), "%s: committing a transaction with offsets", e.rule)
		polled += len(rs)
	}
	got := e.cluster.Committed(t, in, topic)
	var sum int64
	for _, r := range got {
		sum += r.At
	}
	ends := e.cluster.EndOffsets(t, topic)
	var endSum int64
	for _, o := range ends {
		endSum += o
	}
	// Each partition's log ends with the last transaction's commit marker,
	// one offset past the last record the consumer can read.
	assert.Equal(t, endSum-int64(len(ends)), sum, "%s: the offsets sent with the transactions are the group's commits", e.rule)
}

// silentListener accepts connections and never answers.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func testSilentBroker(t *testing.T, e *env) {
	b := e.h.NewBackend(t, []string{silentListener(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	c, err := consumer.New(ctx, b, "g", []string{"t"}, e.consumerOpts(nil))
	if c != nil {
		_ = c.Close()
	}
	took := time.Since(start)
	requireCode(t, e, err, polykafka.Unavailable, "consumer.New against a broker that never answers")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: the error still says the deadline expired", e.rule)
	assert.Less(t, took, 3*time.Second, "%s: consumer.New returns by its context's deadline (2s)", e.rule)
}

func testCloseInsideHandler(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produce(topic, "v", 3, 0)
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, CloseTimeout: 20 * time.Second})
	type result struct {
		err  error
		took time.Duration
	}
	res := make(chan result, 1)
	e.run(c, func(context.Context, polykafka.Record) error {
		start := time.Now()
		err := c.Close()
		select {
		case res <- result{err, time.Since(start)}:
		default:
		}
		return nil
	})
	select {
	case r := <-res:
		requireCode(t, e, r.err, polykafka.InvalidArgument, "Close from inside a handler", "handler")
		assert.Less(t, r.took, time.Second, "%s: Close inside a handler fails at once instead of waiting CloseTimeout", e.rule)
	case <-time.After(wait):
		t.Fatalf("%s: the handler never ran", e.rule)
	}
	assert.NoError(t, c.Close(), "%s: Close from outside still works afterwards", e.rule)
}

func testPauseUnassigned(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, nil)
	_, err := c.AwaitAssignment(e.ctx(wait))
	require.NoError(t, err, "%s: AwaitAssignment", e.rule)
	err = c.Pause(e.ctx(wait), polykafka.TopicPartition{Topic: topic, Partition: 7})
	if polykafka.Code(err) == polykafka.Unimplemented {
		return
	}
	requireCode(t, e, err, polykafka.InvalidArgument, "Pause of a partition not assigned", topic+"/7")
	requireCode(t, e, c.Resume(e.ctx(wait), polykafka.TopicPartition{Topic: "no-such-topic", Partition: 0}),
		polykafka.InvalidArgument, "Resume of a partition not assigned")
	require.NoError(t, c.Close())
	_, err = c.AwaitAssignment(e.ctx(wait))
	requireCode(t, e, err, polykafka.Closed, "AwaitAssignment after Close")
}

func testNilCallback(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	p := e.newProducer(nil)
	ctx := e.ctx(wait)
	assert.NotPanics(t, func() { p.SendAsync(ctx, nil, nil) }, "%s: SendAsync of a nil record with a nil callback", e.rule)
	assert.NotPanics(t, func() { p.SendAsync(ctx, &polykafka.Record{}, nil) }, "%s: SendAsync of an invalid record with a nil callback", e.rule)
	p.SendAsync(ctx, &polykafka.Record{Topic: topic, Value: []byte("v")}, nil)
	require.NoError(t, p.Flush(ctx))
	assert.Equal(t, int64(1), e.cluster.EndOffsets(t, topic)[0], "%s: a record sent with a nil callback is written", e.rule)
}

func testErrorsWrapOnce(t *testing.T, e *env) {
	b := e.h.NewBackend(t, nil) // no brokers: an invalid connection
	_, err := consumer.New(e.ctx(wait), b, "g", []string{"t"}, e.consumerOpts(nil))
	requireCode(t, e, err, polykafka.InvalidArgument, "consumer.New with no brokers", "Brokers")
	assert.Equal(t, 1, strings.Count(err.Error(), "("), "%s: the error is wrapped once: %q", e.rule, err)
	_, err = producer.New(e.ctx(wait), b, &producer.Options{Logger: e.logger})
	requireCode(t, e, err, polykafka.InvalidArgument, "producer.New with no brokers", "Brokers")
	assert.Equal(t, 1, strings.Count(err.Error(), "("), "%s: the error is wrapped once: %q", e.rule, err)

	topic := e.cluster.Topic(t, 1)
	p := e.newProducer(&producer.Options{RecordPartition: true})
	err = p.Send(e.ctx(wait), &polykafka.Record{Topic: topic, Partition: 5, Value: []byte("v")})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "producer: Send"), "%s: Send's errors name Send: %q", e.rule, err)
}

func testProducerSeesGrowth(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	p := e.newProducer(nil)
	ctx := e.ctx(wait)
	var key []byte
	for i := 0; key == nil; i++ {
		k := []byte(fmt.Sprintf("k-%d", i))
		if driver.KeyPartition(k, 6) >= 2 {
			key = k
		}
	}
	r := &polykafka.Record{Topic: topic, Key: key, Value: []byte("before")}
	require.NoError(t, p.Send(ctx, r))
	assert.Equal(t, driver.KeyPartition(key, 2), r.Partition, "%s: before growth the key lands on murmur2 mod 2", e.rule)

	e.cluster.AddPartitions(t, topic, 6)
	start := time.Now()
	e.eventuallyf(10*time.Second, func() bool {
		r := &polykafka.Record{Topic: topic, Key: key, Value: []byte("after")}
		require.NoError(t, p.Send(ctx, r))
		return r.Partition == driver.KeyPartition(key, 6)
	}, func() string {
		return "the producer kept placing the key on the old partition count: it did not notice the growth within a few discovery intervals"
	})
	t.Logf("%s: the key moved %v after growth (discovery interval 300ms)", e.rule, time.Since(start).Round(time.Millisecond))
}

// assignCount counts HookAssigned calls.
type assignCount struct{ n atomic.Int32 }

func (a *assignCount) OnPartitionsAssigned(context.Context, []polykafka.TopicPartition) { a.n.Add(1) }

func testOneGrowthOneRebalance(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	gate := &countGate{Backend: e.backend, frozen: map[string]int32{}}
	gate.open.Store(true)
	ac := &assignCount{}
	c, err := consumer.New(e.ctx(wait), gate, group, []string{topic}, e.consumerOpts(&consumer.Options{Hooks: []any{ac}, DiscoveryInterval: time.Second}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	e.run(c, newSink().handler)
	e.assigned(wait, topic, 2, c)
	// The assignment is visible before HookAssigned runs: wait for the hook
	// of the first generation, or it may count as the growth's.
	e.eventually(wait, func() bool { return ac.n.Load() >= 1 }, "HookAssigned did not run for the first assignment")
	before := ac.n.Load()
	e.cluster.AddPartitions(t, topic, 4)
	e.assigned(wait, topic, 4, c)
	// Let three more discovery polls pass: a second rebalance for the same
	// growth would have started by then.
	polls := gate.polls.Load()
	e.eventually(wait, func() bool { return gate.polls.Load() >= polls+3 }, "discovery stopped polling")
	assert.Equal(t, before+1, ac.n.Load(), "%s: one growth causes one rebalance", e.rule)
}

// leaveWatch wraps a backend to record the highest offset its consumers
// committed on partition 0 before the driver's Close (leaving the group)
// began. A backend that revokes on leave commits again from its revoke;
// that commit does not count here.
type leaveWatch struct {
	driver.Backend
	leaving     atomic.Bool
	beforeLeave atomic.Int64
}

func (w *leaveWatch) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	d, err := w.Backend.OpenConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &watchedConsumer{Consumer: d, w: w}, nil
}

type watchedConsumer struct {
	driver.Consumer
	w *leaveWatch
}

func (c *watchedConsumer) Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	before := !c.w.leaving.Load()
	err := c.Consumer.Commit(ctx, offsets)
	if err == nil && before {
		for tp, o := range offsets {
			if tp.Partition == 0 && o.Offset > c.w.beforeLeave.Load() {
				c.w.beforeLeave.Store(o.Offset)
			}
		}
	}
	return err
}

func (c *watchedConsumer) Close(ctx context.Context) error {
	c.w.leaving.Store(true)
	return c.Consumer.Close(ctx)
}

func testCloseAfterHandlerOverrun(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produce(topic, "v", 6, 0)
	// CommitManual: nothing commits the processed records but Close.
	w := &leaveWatch{Backend: e.backend}
	c, err := consumer.New(e.ctx(wait), w, group, []string{topic},
		e.consumerOpts(&consumer.Options{Initial: discovery.Earliest, Commit: consumer.CommitManual, CloseTimeout: time.Second}))
	require.NoError(t, err, "consumer.New")
	t.Cleanup(func() { _ = c.Close() })
	stuck := make(chan struct{})
	released := make(chan struct{})
	done := e.run(c, func(_ context.Context, r polykafka.Record) error {
		if r.Offset == 5 {
			// Overruns CloseTimeout, and ignores its context.
			close(stuck)
			select {
			case <-time.After(3 * time.Second):
			case <-released:
			}
		}
		return nil
	})
	t.Cleanup(func() { close(released) })
	select {
	case <-stuck:
	case <-time.After(wait):
		t.Fatalf("%s: the handler never reached the last record", e.rule)
	}
	start := time.Now()
	err = c.Close()
	took := time.Since(start)
	require.Error(t, err, "%s: Close while the handler overruns CloseTimeout", e.rule)
	assert.Contains(t, err.Error(), "handler did not return", "%s: Close says the handler did not return", e.rule)
	assert.Less(t, took, 3*time.Second, "%s: Close gives up on the handler after CloseTimeout (1s)", e.rule)
	assert.Equal(t, int64(5), w.beforeLeave.Load(), "%s: Close commits the records processed before the overrunning one before it leaves the group (not only through a revoke the leave may cause)", e.rule)
	committed := e.positions(t, group, topic)
	assert.Equal(t, int64(5), committed[0].Offset, "%s: the records processed before the overrunning one are committed when Close returns", e.rule)
	e.returned(done, "Run after Close")
}
