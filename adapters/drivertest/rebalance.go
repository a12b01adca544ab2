package drivertest

// Cases about what a rebalance may and may not do to a running member:
// hand out nothing below the member's own commit, and never stop it.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// ownCommits is a HookCommit that remembers, per partition, the highest
// offset this member's commits reported committed.
type ownCommits struct {
	mu sync.Mutex
	m  map[polykafka.TopicPartition]int64
}

func (o *ownCommits) OnCommit(offsets map[polykafka.TopicPartition]int64, err error) {
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for tp, off := range offsets {
		if off > o.m[tp] {
			o.m[tp] = off
		}
	}
}

func (o *ownCommits) at(tp polykafka.TopicPartition) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[tp]
}

// owned is a HookAssigned, HookRevoked and HookLost that follows how many
// partitions the member owns and closes full once it owns n of them (a
// rebalance, eager or incremental, is over and its start decisions made).
type owned struct {
	mu   sync.Mutex
	n    int
	have map[polykafka.TopicPartition]bool
	full chan struct{}
	once sync.Once
}

func newOwned(n int) *owned {
	return &owned{n: n, have: make(map[polykafka.TopicPartition]bool), full: make(chan struct{})}
}

func (o *owned) OnPartitionsAssigned(_ context.Context, tps []polykafka.TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, tp := range tps {
		o.have[tp] = true
	}
	if len(o.have) >= o.n {
		o.once.Do(func() { close(o.full) })
	}
}

func (o *owned) OnPartitionsRevoked(_ context.Context, tps []polykafka.TopicPartition) { o.drop(tps) }

func (o *owned) OnPartitionsLost(_ context.Context, tps []polykafka.TopicPartition) { o.drop(tps) }

func (o *owned) drop(tps []polykafka.TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, tp := range tps {
		delete(o.have, tp)
	}
}

// testNoRedeliveryBelowOwnCommit: one member with a slow handler gets a
// rebalance (the topic grows) while it is still handing out a fetched
// batch. Records of that batch fetched before the rebalance must not be
// handed out after it: the partitions start again at the committed
// position, and a stale record handed out, processed and committed there
// would be fetched and handed out a second time, below the commit.
//
// The backlog is produced before the member starts, over many partitions
// led by one broker (clients fetch per leader), so that a fetch holds
// records of several partitions. The handler holds the first record of
// half the partitions until the rebalance is over, so that the runs of
// its fetch after it are handed out (or dropped) after the rebalance, on
// every run of the case.
func testNoRedeliveryBelowOwnCommit(t *testing.T, e *env) {
	const (
		partitions = 12
		grown      = partitions + 2
		perPart    = 4
		slow       = 100 * time.Millisecond
	)
	topic, group := e.cluster.Topic(t, partitions), e.cluster.Group(t)
	if f := e.cluster.Fake(); f != nil {
		// The in-process cluster picks each partition's leader at random,
		// and a client fetches per leader: one broker may lead one or two
		// of the partitions only. Let one broker lead them all, so that a
		// fetch holds records of every partition, as on a one-broker
		// cluster.
		md, err := e.cluster.Admin().Metadata(e.ctx(10*time.Second), topic)
		require.NoError(t, err, "metadata of %s", topic)
		leadAll(t, f, topic, partitions, md.Topics[topic].Partitions[0].Leader)
	}
	all := make([]int32, grown)
	for i := range all {
		all[i] = int32(i)
	}
	want := e.produce(topic, "a", perPart, all[:partitions]...)
	commits := &ownCommits{m: make(map[polykafka.TopicPartition]int64)}
	own := newOwned(grown)
	c := e.newConsumer(group, []string{topic}, &consumer.Options{
		Initial: discovery.Earliest, DiscoveryInterval: 200 * time.Millisecond, Hooks: []any{commits, own},
	})
	s := newSink()
	var (
		mu    sync.Mutex
		below []string
		first = make(chan struct{})
		seen  = make(map[polykafka.TopicPartition]bool)
	)
	e.run(c, func(ctx context.Context, r polykafka.Record) error {
		if at := commits.at(r.TopicPartition()); r.Offset < at {
			mu.Lock()
			below = append(below, fmt.Sprintf("%s@%d (committed %d)", r.TopicPartition(), r.Offset, at))
			mu.Unlock()
		}
		s.add(r)
		if !seen[r.TopicPartition()] {
			seen[r.TopicPartition()] = true
			if len(seen) == partitions/2 {
				// The first record of half the partitions: a fetch of
				// several partitions is being handed out (a first fetch
				// may hold one or a few partitions only, those the client
				// had received when it was called; the next one holds the
				// others), with more of its runs after this one. The test
				// grows the topic now; hold this record until the
				// rebalance is over (the member owns every partition
				// again, decided), so that the rest of the fetch is
				// handed out after it.
				close(first)
				select {
				case <-own.full:
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}
		select {
		case <-time.After(slow):
		case <-ctx.Done():
		}
		return nil
	})
	select {
	case <-first:
	case <-time.After(wait):
		t.Fatalf("%s: records of half the partitions never reached the handler", e.rule)
	}
	// Grow the topic while a fetch of several partitions is handed out:
	// the discovery makes the group rebalance in the middle of it.
	e.cluster.AddPartitions(t, topic, grown)
	e.assigned(wait, topic, grown, c)
	more := e.produce(topic, "b", 1, all...)
	e.received(s, append(want, more...), "every record, across the rebalance")
	s.mu.Lock()
	dups := 0
	for _, n := range s.count {
		dups += n - 1
	}
	s.mu.Unlock()
	t.Logf("%s: %d records, %d delivered again", e.rule, len(want)+len(more), dups)
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, below, "%s: records at offsets below this member's own reported commit reached the handler again", e.rule)
}

// blockingStore is a store whose first Load blocks until the test releases
// it, or until the caller's context ends (then interrupted is closed).
type blockingStore struct {
	offsetstore.Store
	first       atomic.Bool
	entered     chan struct{}
	interrupted chan struct{}
	release     chan struct{}
}

func newBlockingStore(s offsetstore.Store) *blockingStore {
	return &blockingStore{Store: s, entered: make(chan struct{}), interrupted: make(chan struct{}), release: make(chan struct{})}
}

func (s *blockingStore) Load(ctx context.Context, group, topic string) (map[int32]offsetstore.Position, error) {
	if s.first.CompareAndSwap(false, true) {
		close(s.entered)
		select {
		case <-s.release:
		case <-ctx.Done():
			close(s.interrupted)
			return nil, ctx.Err()
		}
	}
	return s.Store.Load(ctx, group, topic)
}

// testRebalanceDuringDecision: a member's start decision is interrupted by
// a rebalance (a second member joins while the first one's store is slow):
// the decision is made again in the next generation, and neither member
// stops.
func testRebalanceDuringDecision(t *testing.T, e *env) {
	const partitions = 4
	topic, group := e.cluster.Topic(t, partitions), e.cluster.Group(t)
	base := e.store
	if base == nil {
		base = offsetstore.NewMemory()
	}
	store := newBlockingStore(base)
	opts := &consumer.Options{Initial: discovery.Earliest, Store: store}
	s := newSink()
	a := e.newConsumer(group, []string{topic}, opts)
	doneA := e.run(a, s.handler)
	select {
	case <-store.entered:
	case <-time.After(wait):
		t.Fatalf("%s: the first member never decided", e.rule)
	}
	b := e.newConsumer(group, []string{topic}, opts)
	doneB := e.run(b, s.handler)
	// Let the decision go once the rebalance has interrupted it (the
	// backend's generation ended), or, on a backend that lets the group
	// wait for the decision instead, once the group has been rebalancing
	// for many heartbeats (the harness's are about 250ms).
	adm := e.cluster.Admin()
	var since time.Time
	e.eventually(wait, func() bool {
		select {
		case <-store.interrupted:
			return true
		default:
		}
		if e.h.GroupProtocol == consumer.GroupProtocolConsumer {
			// KIP-848 has no rebalance barrier to wait in: the
			// coordinator moves partitions to the new member once the
			// first has finished its callback and released them. The
			// decision goes on once both are members.
			if e.members(group) < 2 {
				since = time.Time{}
				return false
			}
			if since.IsZero() {
				since = time.Now()
			}
			return time.Since(since) > 2*time.Second
		}
		described, err := adm.DescribeGroups(e.ctx(10*time.Second), group)
		if err != nil || described[group].State != "PreparingRebalance" {
			since = time.Time{}
			return false
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) > 2*time.Second
	}, "the second member's join did not start a rebalance")
	close(store.release)

	// stopped fails the test at once if a member's Run returned: a
	// rebalance must not stop it.
	var bClosed bool
	stopped := func() {
		for name, done := range map[string]<-chan error{"first": doneA, "second": doneB} {
			if name == "second" && bClosed {
				continue
			}
			select {
			case err := <-done:
				t.Fatalf("%s: the %s member's Run returned (%v): a rebalance stopped it", e.rule, name, err)
			default:
			}
		}
	}
	want := e.produce(topic, "a", 3, 0, 1, 2, 3)
	e.eventuallyf(wait, func() bool { stopped(); return len(s.missing(want)) == 0 }, func() string {
		return fmt.Sprintf("records produced after the rebalance were not read: missing %v", s.missing(want))
	})
	e.assigned(wait, topic, partitions, a, b)
	stopped()
	bClosed = true
	require.NoError(t, b.Close())
	e.assigned(wait, topic, partitions, a)
	more := e.produce(topic, "b", 3, 0, 1, 2, 3)
	e.eventuallyf(wait, func() bool { stopped(); return len(s.missing(more)) == 0 }, func() string {
		return fmt.Sprintf("records produced after the second member left were not read by the first: missing %v", s.missing(more))
	})
}

// workers stands for an application that hands polled records to its own
// workers: it holds them unmarked until HookRevoking asks it to finish the
// records of the revoked partitions, which it then marks.
type workers struct {
	c    *consumer.Consumer
	mu   sync.Mutex
	held []*polykafka.Record
	n    int
}

func (w *workers) OnPartitionsRevoking(_ context.Context, tps []polykafka.TopicPartition) {
	w.mu.Lock()
	defer w.mu.Unlock()
	revoked := make(map[polykafka.TopicPartition]bool, len(tps))
	for _, tp := range tps {
		revoked[tp] = true
	}
	keep := w.held[:0]
	for _, r := range w.held {
		if revoked[r.TopicPartition()] {
			w.c.Mark(r) // finished
		} else {
			keep = append(keep, r)
		}
	}
	w.held = keep
}

func (w *workers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// testRevokingHookFinishesWork: HookRevoking runs before the revoke commit,
// so records an application's own workers finish (and mark) there are
// committed, and the next owner does not read them again.
func testRevokingHookFinishesWork(t *testing.T, e *env) {
	const partitions, perPart = 2, 5
	topic, group := e.cluster.Topic(t, partitions), e.cluster.Group(t)
	e.produce(topic, "a", perPart, 0, 1)
	w := &workers{}
	opts := &consumer.Options{Initial: discovery.Earliest, Commit: consumer.CommitManual, Hooks: []any{w}}
	a := e.newConsumer(group, []string{topic}, opts)
	w.c = a
	ctx, cancel := context.WithCancel(context.Background())
	polled := make(chan struct{})
	t.Cleanup(func() { cancel(); <-polled })
	go func() {
		defer close(polled)
		for ctx.Err() == nil {
			rs, err := a.Poll(ctx)
			if err != nil {
				return
			}
			w.mu.Lock()
			w.held = append(w.held, rs...)
			w.n += len(rs)
			w.mu.Unlock()
		}
	}()
	e.eventually(wait, func() bool { return w.count() >= partitions*perPart }, "the first member did not poll every record")

	sb := newSink()
	b := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest})
	e.run(b, sb.handler)
	e.eventually(wait, func() bool { return len(b.Assignment()) == 1 && len(a.Assignment()) == 1 }, "two members did not split 2 partitions")
	moved := b.Assignment()[0]
	assert.Equal(t, int64(perPart), e.positions(t, group, topic)[moved.Partition].Offset,
		"%s: the revoke commit of %s includes the records the workers finished in HookRevoking", e.rule, moved)
	more := e.produce(topic, "b", 1, moved.Partition)
	e.eventually(wait, func() bool { return len(sb.missing(more)) == 0 }, "the new owner did not read a new record")
	assert.Equal(t, []int64{perPart}, sb.offsets(moved), "%s: the new owner reads only records after those finished in HookRevoking", e.rule)
}

// leadAll lets broker lead the first n partitions of topic on the
// in-process cluster f.
func leadAll(t *testing.T, f *kfake.Cluster, topic string, n, broker int32) {
	t.Helper()
	for p := range n {
		require.NoError(t, f.MoveTopicPartition(topic, p, broker), "move %s/%d to broker %d", topic, p, broker)
	}
}
