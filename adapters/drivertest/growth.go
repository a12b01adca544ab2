package drivertest

// Partitions added under load: the consumer and the producer see them,
// and one growth makes one rebalance.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
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
