package drivertest

// The consumer group protocol (KIP-848): incremental assignment.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
)

// rejoinWatch wraps a backend to count the Rejoin calls made for growth
// (non-nil counts).
type rejoinWatch struct {
	driver.Backend
	growth atomic.Int64
}

func (w *rejoinWatch) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	d, err := w.Backend.OpenConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &rejoinCounted{Consumer: d, w: w}, nil
}

type rejoinCounted struct {
	driver.Consumer
	w *rejoinWatch
}

func (c *rejoinCounted) Rejoin(ctx context.Context, counts map[string]int32) error {
	if counts != nil {
		c.w.growth.Add(1)
	}
	return c.Consumer.Rejoin(ctx, counts)
}

// rebalanceLog records what the rebalance hooks and the discovery hook
// were given, in order.
type rebalanceLog struct {
	mu         sync.Mutex
	assigned   [][]polykafka.TopicPartition
	revoked    [][]polykafka.TopicPartition
	lost       [][]polykafka.TopicPartition
	discovered atomic.Int64
}

func (l *rebalanceLog) OnPartitionsAssigned(_ context.Context, tps []polykafka.TopicPartition) {
	l.add(&l.assigned, tps)
}

func (l *rebalanceLog) OnPartitionsRevoked(_ context.Context, tps []polykafka.TopicPartition) {
	l.add(&l.revoked, tps)
}

func (l *rebalanceLog) OnPartitionsLost(_ context.Context, tps []polykafka.TopicPartition) {
	l.add(&l.lost, tps)
}

func (l *rebalanceLog) OnPartitionsDiscovered(discovery.Growth) { l.discovered.Add(1) }

func (l *rebalanceLog) add(to *[][]polykafka.TopicPartition, tps []polykafka.TopicPartition) {
	tps = slices.Clone(tps)
	slices.SortFunc(tps, func(a, b polykafka.TopicPartition) int { return int(a.Partition - b.Partition) })
	l.mu.Lock()
	defer l.mu.Unlock()
	*to = append(*to, tps)
}

func (l *rebalanceLog) snapshot() (assigned, revoked, lost [][]polykafka.TopicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.assigned), slices.Clone(l.revoked), slices.Clone(l.lost)
}

func testKIP848Incremental(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	w := &rejoinWatch{Backend: e.backend}
	log, d := &rebalanceLog{}, newDecisions()
	s := newSink()
	// The first record of each new partition checks that its start
	// decision was stored before it was handed out.
	var storedFirst sync.Map // partition -> error string ("" when stored)
	h := func(ctx context.Context, r polykafka.Record) error {
		if r.Partition >= 2 {
			if _, seen := storedFirst.Load(r.Partition); !seen {
				msg := ""
				if _, ok := e.positions(t, group, topic)[r.Partition]; !ok {
					msg = fmt.Sprintf("no stored position for %s when its first record (offset %d) was handed out", r.TopicPartition(), r.Offset)
				}
				storedFirst.Store(r.Partition, msg)
			}
		}
		return s.handler(ctx, r)
	}
	c, err := consumer.New(e.ctx(wait), w, group, []string{topic}, e.consumerOpts(&consumer.Options{Hooks: []any{log, d}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	e.run(c, h)
	e.assigned(wait, topic, 2, c)
	e.eventually(wait, func() bool { a, _, _ := log.snapshot(); return len(a) >= 1 }, "HookAssigned did not run for the first assignment")
	old := e.produce(topic, "old", 5, 0, 1)
	e.received(s, old, "records of the first partitions")

	e.cluster.AddPartitions(t, topic, 4)
	added := e.produce(topic, "added", 10, 2, 3)
	e.assigned(wait, topic, 4, c)
	e.received(s, added, "records of partitions added while the member ran")
	e.wantDecision(d, topic, 2, discovery.ReasonNewPartition, 0)
	e.wantDecision(d, topic, 3, discovery.ReasonNewPartition, 0)
	for p := int32(2); p < 4; p++ {
		msg, ok := storedFirst.Load(p)
		if assert.True(t, ok, "%s: no record of p%d seen by the handler", e.rule, p) {
			assert.Empty(t, msg, "%s: a start decision is stored before the first record", e.rule)
		}
	}
	e.eventually(wait, func() bool { return log.discovered.Load() >= 1 }, "partition discovery did not report the growth")

	after := e.produce(topic, "after", 5, 0, 1, 2, 3)
	e.received(s, after, "records after the growth")
	assigned, revoked, lost := log.snapshot()
	tp := func(p int32) polykafka.TopicPartition { return polykafka.TopicPartition{Topic: topic, Partition: p} }
	assert.Equal(t, [][]polykafka.TopicPartition{{tp(0), tp(1)}, {tp(2), tp(3)}}, assigned,
		"%s: HookAssigned sees the first assignment, then only the added partitions", e.rule)
	assert.Empty(t, revoked, "%s: growth revokes nothing under KIP-848", e.rule)
	assert.Empty(t, lost, "%s: growth loses nothing", e.rule)
	assert.Zero(t, w.growth.Load(), "%s: discovery forces no rebalance (Rejoin) under KIP-848: the coordinator assigns new partitions itself", e.rule)
	for k, n := range s.count {
		assert.Equal(t, 1, n, "%s: %s delivered once: the old partitions were not restarted", e.rule, k)
	}
}
