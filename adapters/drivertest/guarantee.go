package drivertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

const wait = 45 * time.Second

// decisions records the start decisions a consumer reports through
// HookStartDecision (the first one per partition).
type decisions struct {
	mu  sync.Mutex
	m   map[polykafka.TopicPartition]discovery.Decision
	all []discovery.Decision
}

func newDecisions() *decisions {
	return &decisions{m: make(map[polykafka.TopicPartition]discovery.Decision)}
}

func (d *decisions) OnStartDecision(dec discovery.Decision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, dec)
	if _, ok := d.m[dec.TopicPartition]; !ok {
		d.m[dec.TopicPartition] = dec
	}
}

// last returns the latest decision for topic/p with reason, if any.
func (d *decisions) last(topic string, p int32, reason discovery.Reason) (discovery.Decision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.all) - 1; i >= 0; i-- {
		if dec := d.all[i]; dec.Topic == topic && dec.Partition == p && dec.Reason == reason {
			return dec, true
		}
	}
	return discovery.Decision{}, false
}

func (d *decisions) get(topic string, p int32) (discovery.Decision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dec, ok := d.m[polykafka.TopicPartition{Topic: topic, Partition: p}]
	return dec, ok
}

// produce writes n records to each of partitions, with values
// "<tag>-<partition>-<i>", and returns the values.
func (e *env) produce(topic, tag string, n int, partitions ...int32) []string {
	e.t.Helper()
	var rs []*kgo.Record
	var vals []string
	for _, p := range partitions {
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d-%d", tag, p, i)
			vals = append(vals, v)
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	e.cluster.Produce(e.t, rs...)
	return vals
}

// loadProducer writes numbered records round-robin over the topic's
// partitions (as many as partitions holds) every tick, until stopped.
type loadProducer struct {
	partitions atomic.Int32
	stop       chan struct{}
	done       chan struct{}
	mu         sync.Mutex
	acked      []string
	err        error
}

func (e *env) startLoad(topic string, partitions int32, every time.Duration) *loadProducer {
	lp := &loadProducer{stop: make(chan struct{}), done: make(chan struct{})}
	lp.partitions.Store(partitions)
	go func() {
		defer close(lp.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-lp.stop:
				return
			case <-t.C:
			}
			p := int32(i) % lp.partitions.Load()
			v := fmt.Sprintf("load-%d-%d", p, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := e.cluster.ProduceContext(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
			cancel()
			lp.mu.Lock()
			if err != nil && lp.err == nil {
				lp.err = err
			}
			if err == nil {
				lp.acked = append(lp.acked, v)
			}
			lp.mu.Unlock()
		}
	}()
	e.t.Cleanup(lp.halt)
	return lp
}

func (lp *loadProducer) halt() {
	select {
	case <-lp.stop:
	default:
		close(lp.stop)
	}
	<-lp.done
}

// finish stops the producer and returns the acknowledged values.
func (lp *loadProducer) finish(t *testing.T) []string {
	lp.halt()
	lp.mu.Lock()
	defer lp.mu.Unlock()
	require.NoError(t, lp.err, "the load producer failed")
	return lp.acked
}

func (lp *loadProducer) count() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return len(lp.acked)
}

// returned waits up to wait for the result of a Run started with e.run,
// failing the test with msg if Run is still going.
func (e *env) returned(done <-chan error, msg string) error {
	e.t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		e.t.Fatalf("%s: %s", e.rule, msg)
		return nil
	}
}

// received waits until s holds every value of want.
func (e *env) received(s *sink, want []string, what string) {
	e.t.Helper()
	e.eventuallyf(wait, func() bool { return len(s.missing(want)) == 0 }, func() string {
		missing := s.missing(want)
		return fmt.Sprintf("%s: %d of %d records never consumed, first: %v", what, len(missing), len(want), first(missing, 5))
	})
}

func first(xs []string, n int) []string {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

func (e *env) noneOf(s *sink, unwanted []string, what string) {
	e.t.Helper()
	got := s.values()
	var bad []string
	for _, v := range unwanted {
		if got[v] {
			bad = append(bad, v)
		}
	}
	assert.Empty(e.t, bad, "%s: %s", e.rule, what)
}

func (e *env) wantDecision(d *decisions, topic string, p int32, reason discovery.Reason, offset int64) {
	e.t.Helper()
	dec, ok := d.get(topic, p)
	if assert.True(e.t, ok, "%s: no start decision reported for %s/%d", e.rule, topic, p) {
		assert.Equal(e.t, reason, dec.Reason, "%s: reason of %s/%d", e.rule, topic, p)
		assert.Equal(e.t, offset, dec.Offset, "%s: start offset of %s/%d", e.rule, topic, p)
	}
}

func testCommitRestart(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	first := e.produce(topic, "first", 10, 0, 1)
	s1 := newSink()
	c1 := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest})
	e.run(c1, s1.handler)
	e.received(s1, first, "first consumer")
	require.NoError(t, c1.Close(), "Close commits processed offsets")

	second := e.produce(topic, "second", 10, 0, 1)
	s2 := newSink()
	d := newDecisions()
	c2 := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, Hooks: []any{d}})
	e.run(c2, s2.handler)
	e.received(s2, second, "restarted consumer")
	e.noneOf(s2, first, "records processed before the restart were delivered again")
	for p := int32(0); p < 2; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonCommitted, 10)
		assert.Equal(t, int64(10), s2.offsets(polykafka.TopicPartition{Topic: topic, Partition: p})[0], "%s: first offset after restart", e.rule)
	}
}

var errHandler = errors.New("handler refuses this record")

func testHandlerError(t *testing.T, e *env) {
	handlerFailure(t, e, func(r polykafka.Record) error {
		if r.Offset == 5 {
			return errHandler
		}
		return nil
	}, 5, true)
}

func testHandlerPanic(t *testing.T, e *env) {
	handlerFailure(t, e, func(r polykafka.Record) error {
		if r.Offset == 3 {
			panic("boom")
		}
		return nil
	}, 3, false)
}

// handlerFailure runs a consumer whose handler fails at offset failAt of a
// one-partition topic and checks that the consumer stops with the failed
// record uncommitted.
func handlerFailure(t *testing.T, e *env, h func(polykafka.Record) error, failAt int64, wrapsCause bool) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produce(topic, "v", 10, 0)
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest})
	var handled atomic.Int64
	done := e.run(c, func(_ context.Context, r polykafka.Record) error {
		if err := h(r); err != nil {
			return err
		}
		handled.Add(1)
		return nil
	})
	err := e.returned(done, "Run did not return after the handler failed")
	require.Error(t, err, "%s: Run returns the handler failure", e.rule)
	if wrapsCause {
		assert.ErrorIs(t, err, errHandler, "%s: the handler's error is reachable with errors.Is", e.rule)
	} else {
		assert.ErrorContains(t, err, "panic", "%s: a panic is reported as such", e.rule)
	}
	assert.Contains(t, err.Error(), fmt.Sprintf("offset %d", failAt), "%s: the error names the failed offset", e.rule)
	if !wrapsCause {
		var pe *consumer.PanicError
		if assert.ErrorAs(t, err, &pe, "%s: a panic is a *consumer.PanicError", e.rule) {
			assert.NotEmpty(t, pe.Stack, "%s: the panic's stack is kept", e.rule)
		}
		assert.NotContains(t, err.Error(), "goroutine ", "%s: the stack is kept out of the error's message", e.rule)
	}
	assert.Equal(t, failAt, handled.Load(), "%s: records after the failed one are not handled", e.rule)

	got := e.cluster.Committed(t, group, topic)
	assert.Equal(t, failAt, got[0].At, "%s: the commit stops right before the failed record", e.rule)

	again := c.Run(e.ctx(5*time.Second), func(context.Context, polykafka.Record) error { return nil })
	assert.Error(t, again, "%s: a stopped consumer does not run again (it would skip the failed record)", e.rule)
	require.NoError(t, c.Close())
	got = e.cluster.Committed(t, group, topic)
	assert.Equal(t, failAt, got[0].At, "%s: Close does not commit past the failed record", e.rule)

	s := newSink()
	c2 := e.newConsumer(group, []string{topic}, nil)
	e.run(c2, s.handler)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.eventually(wait, func() bool { return len(s.offsets(tp)) >= int(10-failAt) }, "the next consumer re-reads from the failed record")
	assert.Equal(t, failAt, s.offsets(tp)[0], "%s: the next consumer starts at the failed record", e.rule)
}

func testInitialLatest(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	old := e.produce(topic, "old", 10, 0, 1)
	s, d := newSink(), newDecisions()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{d}})
	e.run(c, s.handler)
	e.assigned(wait, topic, 2, c)
	fresh := e.produce(topic, "new", 10, 0, 1)
	e.received(s, fresh, "records produced after the start")
	e.noneOf(s, old, "history was read although Initial is latest")
	for p := int32(0); p < 2; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonInitial, 10)
	}
}

func testInitialEarliest(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	old := e.produce(topic, "old", 10, 0, 1)
	s, d := newSink(), newDecisions()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, Hooks: []any{d}})
	e.run(c, s.handler)
	e.received(s, old, "history")
	for p := int32(0); p < 2; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonInitial, 0)
	}
}

func testNonLeaderDiscovery(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	s := newSink()
	// The first member joins alone, so it leads; it never polls counts.
	leader := e.newConsumer(group, []string{topic}, &consumer.Options{DiscoveryInterval: -1})
	e.run(leader, s.handler)
	e.assigned(wait, topic, 2, leader)
	follower := e.newConsumer(group, []string{topic}, nil)
	e.run(follower, s.handler)
	e.eventually(wait, func() bool { return len(follower.Assignment()) > 0 }, "the second member got no partition")
	e.assigned(wait, topic, 2, leader, follower)

	e.cluster.AddPartitions(t, topic, 4)
	added := e.produce(topic, "added", 10, 2, 3)
	e.assigned(wait, topic, 4, leader, follower)
	e.received(s, added, "records of partitions only a non-leader noticed")
}

func testAddedWhileStopped(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	s1 := newSink()
	c1 := e.newConsumer(group, []string{topic}, nil)
	e.run(c1, s1.handler)
	e.assigned(wait, topic, 2, c1)
	a := e.produce(topic, "a", 5, 0, 1)
	e.received(s1, a, "records before the stop")
	require.NoError(t, c1.Close())

	b := e.produce(topic, "b", 5, 0, 1)
	e.cluster.AddPartitions(t, topic, 4)
	cvals := e.produce(topic, "c", 5, 2, 3)

	s2, d := newSink(), newDecisions()
	c2 := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{d}})
	e.run(c2, s2.handler)
	e.received(s2, append(b, cvals...), "records written while the group was stopped")
	e.noneOf(s2, a, "processed records were delivered again")
	for p := int32(0); p < 2; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonCommitted, 5)
	}
	for p := int32(2); p < 4; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonNewPartition, 0)
	}
}

func testDiesAfterDecision(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	old := e.produce(topic, "old", 5, 0)

	// The first member decides "latest" (offset 5), then dies on its first
	// record without processing anything.
	c1 := e.newConsumer(group, []string{topic}, nil)
	done := e.run(c1, func(context.Context, polykafka.Record) error { return errors.New("crash") })
	e.assigned(wait, topic, 1, c1)
	got := e.cluster.Committed(t, group, topic)
	require.Contains(t, got, int32(0), "%s: the start decision is committed before any record is handed out", e.rule)
	assert.Equal(t, int64(5), got[0].At, "%s: the committed decision is the end of the log at assignment", e.rule)
	assert.Equal(t, int32(1), offsetstore.DecodeMetadata(got[0].Metadata), "%s: the decision records the topic's baseline", e.rule)

	lost := e.produce(topic, "gap", 10, 0)
	e.returned(done, "the first member never failed")
	require.NoError(t, c1.Close())

	s := newSink()
	c2 := e.newConsumer(group, []string{topic}, nil)
	e.run(c2, s.handler)
	e.received(s, lost, "records written after the dead member's decision")
	e.noneOf(s, old, "history before the decision was read")
}

// slowCommitted delays Committed (the Kafka store's Load) of one member, to
// make members of one generation decide one after another.
type slowBackend struct {
	driver.Backend
	delay time.Duration
}

func (b slowBackend) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	d, err := b.Backend.OpenConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return slowConsumer{Consumer: d, delay: b.delay}, nil
}

type slowConsumer struct {
	driver.Consumer
	delay time.Duration
}

func (s slowConsumer) Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Consumer.Committed(ctx, topics)
}

func testFirstGenerationRace(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 6), e.cluster.Group(t)
	old := e.produce(topic, "old", 5, 0, 1, 2, 3, 4, 5)
	e.cluster.HoldFirstGeneration(group, 3)

	s, d := newSink(), newDecisions()
	cs := make([]*consumer.Consumer, 3)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := slowBackend{Backend: e.backend, delay: time.Duration(i) * 500 * time.Millisecond}
			c, err := consumer.New(e.ctx(wait), b, group, []string{topic}, e.consumerOpts(&consumer.Options{Hooks: []any{d}}))
			if !assert.NoError(t, err) {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
			cs[i] = c
		}()
	}
	wg.Wait()
	for _, c := range cs {
		require.NotNil(t, c)
		e.run(c, s.handler)
	}
	e.assigned(wait, topic, 6, cs...)
	for _, c := range cs {
		assert.NotEmpty(t, c.Assignment(), "%s: every member of the first generation owns partitions", e.rule)
	}
	fresh := e.produce(topic, "new", 5, 0, 1, 2, 3, 4, 5)
	e.received(s, fresh, "records produced after the group formed")
	e.noneOf(s, old, "a member replayed history: it took a peer's commit for proof that its partition was new")
	for p := int32(0); p < 6; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonInitial, 5)
	}
}

func testRawClientCommits(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 3), e.cluster.Group(t)
	e.produce(topic, "v", 10, 0, 1, 2)
	e.cluster.CommitRaw(t, group, topic, map[int32]int64{0: 4, 1: 6})

	s, d := newSink(), newDecisions()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{d}})
	e.run(c, s.handler)
	want := map[int32]int64{0: 4, 1: 6, 2: 0}
	e.eventually(wait, func() bool {
		for p, from := range want {
			if len(s.offsets(polykafka.TopicPartition{Topic: topic, Partition: p})) < int(10-from) {
				return false
			}
		}
		return true
	}, "not every record after the raw commits was consumed")
	for p, from := range want {
		assert.Equal(t, from, s.offsets(polykafka.TopicPartition{Topic: topic, Partition: p})[0], "%s: first offset of p%d", e.rule, p)
	}
	e.wantDecision(d, topic, 0, discovery.ReasonCommitted, 4)
	e.wantDecision(d, topic, 1, discovery.ReasonCommitted, 6)
	e.wantDecision(d, topic, 2, discovery.ReasonNewPartition, 0)
	require.NoError(t, c.Close())
	for p, r := range e.cluster.Committed(t, group, topic) {
		assert.Equal(t, int32(3), offsetstore.DecodeMetadata(r.Metadata), "%s: polykafka's commits on p%d record the baseline", e.rule, p)
		assert.Equal(t, int64(10), r.At, "%s: everything processed was committed on p%d", e.rule, p)
	}
}

func testTwoMembersTakeover(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 4), e.cluster.Group(t)
	s := newSink()
	a := e.newConsumer(group, []string{topic}, nil)
	e.run(a, s.handler)
	e.assigned(wait, topic, 4, a)
	b := e.newConsumer(group, []string{topic}, nil)
	e.run(b, s.handler)
	e.eventually(wait, func() bool { return len(b.Assignment()) == 2 && len(a.Assignment()) == 2 }, "two members did not split 4 partitions 2/2")

	lp := e.startLoad(topic, 4, 5*time.Millisecond)
	e.eventually(wait, func() bool { return lp.count() >= 100 }, "the load producer made no progress")
	require.NoError(t, b.Close())
	e.assigned(wait, topic, 4, a)
	before := lp.count()
	e.eventually(wait, func() bool { return lp.count() >= before+100 }, "the load producer made no progress after the leave")
	produced := lp.finish(t)
	e.received(s, produced, "records produced while a member left")
}

func testHandlerRetry(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produce(topic, "v", 10, 0)
	var mu sync.Mutex
	attempts := make(map[int64]int)
	c := e.newConsumer(group, []string{topic}, &consumer.Options{
		Initial: discovery.Earliest,
		OnError: consumer.ErrorPolicy{Retry: true, MaxAttempts: 3, Backoff: 10 * time.Millisecond},
	})
	done := e.run(c, func(_ context.Context, r polykafka.Record) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[r.Offset]++
		switch {
		case r.Offset == 2 && attempts[2] < 3: // succeeds at the last allowed attempt
			return errHandler
		case r.Offset == 7: // never succeeds
			return errHandler
		}
		return nil
	})
	err := e.returned(done, "Run did not stop after MaxAttempts failures")
	assert.ErrorIs(t, err, errHandler, e.rule)
	assert.Contains(t, err.Error(), "offset 7 after 3 attempt(s)", "%s: the error says where and how often", e.rule)
	mu.Lock()
	assert.Equal(t, 3, attempts[2], "%s: offset 2 was retried until it succeeded", e.rule)
	assert.Equal(t, 3, attempts[7], "%s: offset 7 was tried MaxAttempts times", e.rule)
	for off := int64(0); off < 7; off++ {
		if off != 2 {
			assert.Equal(t, 1, attempts[off], "%s: offset %d handled once", e.rule, off)
		}
	}
	assert.Zero(t, attempts[8], "%s: nothing after the record that exhausted its attempts is handled", e.rule)
	mu.Unlock()
	assert.Equal(t, int64(7), e.cluster.Committed(t, group, topic)[0].At, "%s: commits stop right before the record that exhausted its attempts", e.rule)
}

func testRecordsKept(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 3), e.cluster.Group(t)
	want := e.produce(topic, "v", 300, 0, 1, 2)
	// The sink keeps every record the handler is given, by value; the
	// consumer reuses its record buffer across fetches (MaxPollRecords 50,
	// so many times), and the kept records must not change.
	s := newSink()
	c := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, MaxPollRecords: 50})
	e.run(c, s.handler)
	e.received(s, want, "records read through a reused buffer")
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp, rs := range s.recs {
		for _, r := range rs {
			assert.Equal(t, fmt.Sprintf("v-%d-%d", tp.Partition, r.Offset), string(r.Value), "%s: record %s@%d carries its own value", e.rule, tp, r.Offset)
		}
	}
	for k, n := range s.count {
		assert.Equal(t, 1, n, "%s: %s delivered once", e.rule, k)
	}
}
