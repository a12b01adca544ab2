package drivertest

// Consumption without a group (consumer.NewReader).

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// newReader opens a reader on b and closes it at the end of the test; on a
// harness without readers it checks that NewReader is Unimplemented and
// returns nil.
func (e *env) newReader(b driver.Backend, name string, topics []string, o *consumer.Options) *consumer.Consumer {
	e.t.Helper()
	c, err := consumer.NewReader(e.ctx(wait), b, name, topics, e.consumerOpts(o))
	if !e.h.Reader {
		requireCode(e.t, e, err, polykafka.Unimplemented, "NewReader on a backend without group-less reading")
		return nil
	}
	require.NoError(e.t, err, "consumer.NewReader")
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func testReaderReadsWithoutGroup(t *testing.T, e *env) {
	topic, name := e.cluster.Topic(t, 3), e.cluster.Group(t)
	want := e.produce(topic, "v", 10, 0, 1, 2)
	store := offsetstore.NewMemory()
	s, d := newSink(), newDecisions()
	c := e.newReader(e.backend, name, []string{topic}, &consumer.Options{Store: store, Initial: discovery.Earliest, Hooks: []any{d}})
	if c == nil {
		return
	}
	e.run(c, s.handler)
	e.received(s, want, "a reader of every partition")
	for p := int32(0); p < 3; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonInitial, 0)
	}
	require.NoError(t, c.Close())
	assert.Empty(t, e.cluster.Committed(t, name, topic), "%s: a reader commits nothing to Kafka", e.rule)
	pos, err := store.Load(e.ctx(wait), name, topic)
	require.NoError(t, err)
	for p := int32(0); p < 3; p++ {
		assert.Equal(t, offsetstore.Position{Offset: 10, Baseline: 3}, pos[p], "%s: the reader's position of p%d is in its store, with the baseline", e.rule, p)
	}
	for k, n := range s.count {
		assert.Equal(t, 1, n, "%s: %s delivered once", e.rule, k)
	}
}

func testReaderChosenPartitions(t *testing.T, e *env) {
	topic, name := e.cluster.Topic(t, 3), e.cluster.Group(t)
	e.produce(topic, "v", 5, 0, 2)
	want := e.produce(topic, "v", 5, 1)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 1}
	s := newSink()
	c := e.newReader(e.backend, name, []string{topic}, &consumer.Options{
		Store: offsetstore.NewMemory(), Initial: discovery.Earliest, Partitions: []polykafka.TopicPartition{tp}})
	if c == nil {
		return
	}
	e.run(c, s.handler)
	e.received(s, want, "the chosen partition")
	more := e.produce(topic, "w", 3, 0, 1, 2)
	e.received(s, more[3:6], "the chosen partition, later records")
	assert.Equal(t, []polykafka.TopicPartition{tp}, c.Assignment(), "%s: a reader of chosen partitions reads only them", e.rule)
	assert.Equal(t, 8, s.total(), "%s: nothing of the other partitions is delivered", e.rule)
}

func testReaderNewPartitions(t *testing.T, e *env) {
	topic, name := e.cluster.Topic(t, 2), e.cluster.Group(t)
	old := e.produce(topic, "old", 5, 0, 1)
	gate := &countGate{Backend: e.backend, frozen: map[string]int32{topic: 2}}
	s, d := newSink(), newDecisions()
	c := e.newReader(gate, name, []string{topic}, &consumer.Options{Store: offsetstore.NewMemory(), Hooks: []any{d}})
	if c == nil {
		return
	}
	e.run(c, s.handler)
	e.eventually(wait, func() bool { return len(c.Assignment()) == 2 }, "the reader did not take both partitions")
	e.cluster.AddPartitions(t, topic, 4)
	added := e.produce(topic, "added", 10, 2, 3) // before the reader can see them
	gate.open.Store(true)
	e.received(s, added, "records of partitions added while the reader ran")
	for p := int32(2); p < 4; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonNewPartition, 0)
	}
	e.noneOf(s, old, "a reader at Initial=latest read history")
}

func testReaderResumes(t *testing.T, e *env) {
	topic, name := e.cluster.Topic(t, 2), e.cluster.Group(t)
	first := e.produce(topic, "a", 10, 0, 1)
	store := offsetstore.NewMemory()
	s1 := newSink()
	c1 := e.newReader(e.backend, name, []string{topic}, &consumer.Options{Store: store, Initial: discovery.Earliest})
	if c1 == nil {
		return
	}
	e.run(c1, s1.handler)
	e.received(s1, first, "the first reader")
	require.NoError(t, c1.Close())

	second := e.produce(topic, "b", 5, 0, 1)
	s2, d := newSink(), newDecisions()
	c2 := e.newReader(e.backend, name, []string{topic}, &consumer.Options{Store: store, Initial: discovery.Earliest, Hooks: []any{d}})
	e.run(c2, s2.handler)
	e.received(s2, second, "the second reader of the same name")
	e.noneOf(s2, first, "a reader read again what the same name had processed")
	for p := int32(0); p < 2; p++ {
		e.wantDecision(d, topic, p, discovery.ReasonCommitted, 10)
	}
}

// OpenReader makes countGate a driver.PartitionReader when its backend is
// one: the readers it opens see frozen partition counts while the gate is
// closed, as its consumers do.
func (g *countGate) OpenReader(ctx context.Context, cfg driver.ReaderConfig) (driver.Reader, error) {
	pr, ok := g.Backend.(driver.PartitionReader)
	if !ok {
		return nil, polykafka.NewError(polykafka.Unimplemented, "drivertest: OpenReader", "", nil)
	}
	r, err := pr.OpenReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &gatedReader{Reader: r, g: g}, nil
}

type gatedReader struct {
	driver.Reader
	g *countGate
}

func (r *gatedReader) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	return r.g.view(r.Reader.PartitionCounts(ctx, topics))
}
