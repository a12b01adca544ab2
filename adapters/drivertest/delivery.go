package drivertest

// What a handler sees across a rebalance: commits on revoke, bounded
// duplicates, RunBatch.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
)

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
