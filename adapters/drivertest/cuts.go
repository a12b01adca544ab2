package drivertest

// Short cuts of every connection between the clients and an in-process
// broker (internal/netcut) at the moments a member is most exposed: while
// it opens, while it commits, and while its group rebalances.

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
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/netcut"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// shortCut is how long the cut of a cut case lasts: a few seconds, shorter
// than every backend's session timeout, so that the group need not expel
// anyone, and longer than one request's retries.
const shortCut = 3 * time.Second

// cuttable is an in-process cluster whose connections a case cuts, with a
// backend on it; it skips on an external cluster.
type cuttable struct {
	cl *testcluster.Cluster
	sw *netcut.Switch
	b  driver.Backend
}

func newCuttable(t *testing.T, e *env) *cuttable {
	t.Helper()
	if testcluster.External() {
		t.Skip("cuts connections to an in-process broker: a real cluster advertises addresses the test cannot cut")
	}
	cl, sw := testcluster.NewCuttable(t)
	t.Cleanup(func() { _ = sw.Restore() })
	return &cuttable{cl: cl, sw: sw, b: e.h.NewBackend(t, cl.Brokers())}
}

// cutFor cuts every connection now and restores them after d (not a wait:
// the cut ends on its own while the case goes on). The returned channel is
// closed at the restore.
func (k *cuttable) cutFor(t *testing.T, d time.Duration) <-chan struct{} {
	restored := make(chan struct{})
	k.sw.Cut()
	time.AfterFunc(d, func() {
		if err := k.sw.Restore(); err != nil {
			t.Errorf("restoring the cut connections: %v", err)
		}
		close(restored)
	})
	return restored
}

// produce writes n records to each of partitions with the test's own
// client and returns their values.
func (k *cuttable) produce(t *testing.T, topic, tag string, n int, partitions ...int32) []string {
	t.Helper()
	var rs []*kgo.Record
	var vals []string
	for _, p := range partitions {
		for i := range n {
			v := fmt.Sprintf("%s-%d-%d", tag, p, i)
			vals = append(vals, v)
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	k.cl.Produce(t, rs...)
	return vals
}

func (k *cuttable) consumer(t *testing.T, e *env, ctx context.Context, group, topic string, o *consumer.Options) (*consumer.Consumer, error) {
	c, err := consumer.New(ctx, k.b, group, []string{topic}, e.consumerOpts(o))
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

func (k *cuttable) producer(t *testing.T, e *env) *producer.Producer {
	t.Helper()
	p, err := producer.New(e.ctx(30*time.Second), k.b, &producer.Options{Logger: e.logger, DiscoveryInterval: -1})
	require.NoError(t, err, "%s: producer.New", e.rule)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// sendAsyncN sends n records with SendAsync, keyed, recording callbacks in
// d, and returns their values.
func sendAsyncN(p *producer.Producer, topic, tag string, n int, d *deliveries) []string {
	var vals []string
	for i := range n {
		v := fmt.Sprintf("%s-%d", tag, i)
		vals = append(vals, v)
		p.SendAsync(context.Background(), &polykafka.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}, d.cb)
	}
	return vals
}

// checkCallbacks asserts that every record of vals got exactly one
// callback, and no error.
func checkCallbacks(t *testing.T, e *env, d *deliveries, vals []string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range vals {
		assert.Equal(t, 1, d.calls[v], "%s: the callback of %s runs exactly once", e.rule, v)
		assert.NoError(t, d.errs[v], "%s: %s is acknowledged after a %v cut (DeliveryTimeout 2m)", e.rule, v, shortCut)
	}
}

// dupCount counts the deliveries beyond the first of every record in s.
func dupCount(s *sink) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.count {
		n += c - 1
	}
	return n
}

// notStopped fails the test if the Run behind done has returned.
func notStopped(t *testing.T, e *env, done <-chan error, when string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s: the consumer stopped %s: %v (code %v)", e.rule, when, err, polykafka.Code(err))
	default:
	}
}

func testCutAtNew(t *testing.T, e *env) {
	k := newCuttable(t, e)
	topic, group := k.cl.Topic(t, 2), k.cl.Group(t)
	before := k.produce(t, topic, "before", 10, 0, 1)

	restored := k.cutFor(t, shortCut)
	// A producer opened during the cut sends once the broker is back.
	p := k.producer(t, e)
	d := newDeliveries()
	during := sendAsyncN(p, topic, "during", 20, d)
	// A member opened during the cut, with a deadline longer than the cut,
	// opens once the broker is back.
	start := time.Now()
	c, err := k.consumer(t, e, e.ctx(30*time.Second), group, topic, &consumer.Options{Initial: discovery.Earliest})
	require.NoError(t, err, "%s: consumer.New during a %v cut, with a 30s deadline (code %v)", e.rule, shortCut, polykafka.Code(err))
	t.Logf("%s: New returned %v after the cut began", e.rule, time.Since(start).Round(time.Millisecond))
	<-restored

	s := newSink()
	done := e.run(c, s.handler)
	e.eventually(wait, func() bool { return d.count() == len(during) }, "every record sent during the cut gets its callback")
	checkCallbacks(t, e, d, during)
	want := append(append([]string(nil), before...), during...)
	e.received(s, want, "records produced before and during the cut")
	notStopped(t, e, done, "after a cut at New")
	assert.Zero(t, dupCount(s), "%s: a member that opened during a cut reads each record once", e.rule)

	// The short cut at New is a worse case than an unreachable cluster
	// for the whole deadline: that still fails by the deadline, classified.
	k.sw.Cut()
	_, err = k.consumer(t, e, e.ctx(2*time.Second), k.cl.Group(t), topic, nil)
	requireCode(t, e, err, polykafka.Unavailable, "consumer.New while the cluster stays unreachable past its 2s deadline")
	require.NoError(t, k.sw.Restore())
}

// commitCutter cuts every connection when the next OffsetCommit of group
// reaches the broker, before the broker handles it: the commit may land
// or not, and its answer is lost.
func commitCutter(t *testing.T, fake *kfake.Cluster, k *cuttable, group string) (arm func(), fired <-chan struct{}) {
	var armed atomic.Bool
	ch := make(chan struct{})
	var once sync.Once
	fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if req.(*kmsg.OffsetCommitRequest).Group != group || !armed.CompareAndSwap(true, false) {
			return nil, nil, false
		}
		cut := make(chan struct{})
		go func() {
			k.cutFor(t, shortCut)
			close(cut)
		}()
		fake.SleepControl(func() { <-cut })
		once.Do(func() { close(ch) })
		return nil, nil, false
	})
	return func() { armed.Store(true) }, ch
}

// committedAt reads group's commit of partition 0 of topic, waiting
// through the end of a cut (the test's own client reconnects too).
func (k *cuttable) committedAt(t *testing.T, e *env, group, topic string) int64 {
	t.Helper()
	var at int64
	var lastErr error
	e.eventuallyf(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resps, err := k.cl.Admin().FetchOffsets(ctx, group)
		if err == nil {
			err = resps.Error()
		}
		if lastErr = err; err != nil {
			return false
		}
		at = -1
		if r, ok := resps.Lookup(topic, 0); ok {
			at = r.At
		}
		return true
	}, func() string { return fmt.Sprintf("reading the group's commits: %v", lastErr) })
	return at
}

func testCutDuringCommit(t *testing.T, e *env) {
	k := newCuttable(t, e)
	topic, group := k.cl.Topic(t, 1), k.cl.Group(t)
	k.produce(t, topic, "v", 10, 0)
	c, err := k.consumer(t, e, e.ctx(30*time.Second), group, topic, earliestOpts(consumer.Options{Commit: consumer.CommitManual}))
	require.NoError(t, err, "%s: consumer.New", e.rule)
	got := pollN(t, e, c, 10)

	arm, fired := commitCutter(t, k.cl.Fake(), k, group)
	c.Mark(got[:5]...)
	arm()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err = c.Commit(ctx)
	cancel()
	select {
	case <-fired:
	default:
		t.Fatalf("%s: the Commit never reached the broker", e.rule)
	}
	if err != nil {
		// The commit's answer was lost: whatever the broker did, the
		// member says so with a retryable class (Unavailable, or
		// Rebalancing where the client gave the partitions up), never
		// Unknown.
		assert.True(t, polykafka.IsRetryable(err), "%s: a Commit cut off from the broker fails with a retryable code: %v (code %v)", e.rule, err, polykafka.Code(err))
	}
	t.Logf("%s: Commit across the cut: %v", e.rule, err)
	if at := k.committedAt(t, e, group, topic); at > 5 {
		t.Errorf("%s: offset %d committed with only 5 records marked", e.rule, at)
	}

	// Once the broker is back, the member commits again, as an
	// application does: it marks what it processed (records handed out
	// again after the member lost and got back the partition included)
	// and commits, until a commit succeeds.
	var lastErr error
	e.eventuallyf(30*time.Second, func() bool {
		pctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rs, _ := c.Poll(pctx)
		cancel()
		for _, r := range rs {
			if r.Offset < 7 {
				c.Mark(r)
			}
		}
		c.Mark(got[:7]...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lastErr = c.Commit(ctx)
		return lastErr == nil && k.committedAt(t, e, group, topic) == 7
	}, func() string { return fmt.Sprintf("the member commits offset 7 after the cut: %v", lastErr) })

	// It reads on: a record produced after the cut reaches it.
	k.produce(t, topic, "after", 1, 0)
	e.eventually(wait, func() bool {
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		rs, _ := c.Poll(pctx)
		cancel()
		return len(rs) > 0 && rs[len(rs)-1].Offset == 10
	}, "the member does not read on after the cut")
	require.NoError(t, c.Close(), "%s: Close", e.rule)
	assert.Equal(t, int64(7), k.committedAt(t, e, group, topic), "%s: Close commits the marked records only", e.rule)
}

// rebalanceWatcher calls fn once, after arm, when group is in the middle of
// a rebalance: when the SyncGroup of the last of its members arrives
// (classic protocol: every member has read its JoinGroup answer, and the
// last one has not its assignment yet), or when a member asks to join (a
// ConsumerGroupHeartbeat at epoch 0, KIP-848).
//
// The classic trigger is the last member's SyncGroup, not a JoinGroup nor
// the first SyncGroup: a cut that loses a member's JoinGroup answer leaves
// an id in the group that the member never learnt. kafka-go, which joins
// with JoinGroup v1 and learns its id only from that answer, can never
// leave it, and the group waits for it until the coordinator expels it (a
// limit of kafka-go the README's soak section describes; it is not what
// this case is about).
func rebalanceWatcher(fake *kfake.Cluster, group string, members int, fn func()) (arm func()) {
	var armed atomic.Bool
	var mu sync.Mutex
	synced := make(map[string]bool)
	fire := func() {
		if armed.CompareAndSwap(true, false) {
			fn()
		}
	}
	fake.ControlKey(int16(kmsg.SyncGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if r := req.(*kmsg.SyncGroupRequest); r.Group == group && armed.Load() {
			mu.Lock()
			synced[r.MemberID] = true
			last := len(synced) >= members
			mu.Unlock()
			if last {
				fire()
			}
		}
		return nil, nil, false
	})
	fake.ControlKey(int16(kmsg.ConsumerGroupHeartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if r := req.(*kmsg.ConsumerGroupHeartbeatRequest); r.Group == group && r.MemberEpoch == 0 {
			fire()
		}
		return nil, nil, false
	})
	return func() { armed.Store(true) }
}

// noGhost bounds the rebalance after a cut: below the session timeouts
// (30 s on kafka-go, 45 s on franz and confluent) after which a
// coordinator expels a member id its client abandoned.
const noGhost = 20 * time.Second

func testCutDuringRebalance(t *testing.T, e *env) {
	k := newCuttable(t, e)
	const partitions = 4
	topic, group := k.cl.Topic(t, partitions), k.cl.Group(t)
	p := k.producer(t, e)
	d := newDeliveries()
	var sent []string
	send := func(tag string, n int) { sent = append(sent, sendAsyncN(p, topic, tag, n, d)...) }

	s := newSink()
	a, err := k.consumer(t, e, e.ctx(30*time.Second), group, topic, &consumer.Options{Initial: discovery.Earliest})
	require.NoError(t, err, "%s: consumer.New", e.rule)
	doneA := e.run(a, s.handler)
	e.assigned(wait, topic, partitions, a)
	send("before", 40)
	e.received(s, sent, "records sent before the rebalance")

	var restored <-chan struct{}
	var cutOnce sync.Once
	cutNow := make(chan struct{})
	arm := rebalanceWatcher(k.cl.Fake(), group, 2, func() {
		cutOnce.Do(func() {
			restored = k.cutFor(t, shortCut)
			close(cutNow)
		})
	})
	arm()
	// A second member joins: the cut hits the group while it rebalances.
	b, err := k.consumer(t, e, e.ctx(30*time.Second), group, topic, &consumer.Options{Initial: discovery.Earliest})
	require.NoError(t, err, "%s: consumer.New of the second member", e.rule)
	doneB := e.run(b, s.handler)
	select {
	case <-cutNow:
	case <-time.After(wait):
		t.Fatalf("%s: the group never rebalanced for the second member", e.rule)
	}
	send("during", 40)
	<-restored
	// No member id is left behind: a client that rejoins under a new id
	// after the cut, its old one still in the group, makes the next
	// rebalance wait for the old one until the coordinator expels it (the
	// session or rebalance timeout, 30 s on kafka-go) and gives it
	// partitions meanwhile.
	e.eventually(noGhost, func() bool { return e.stableWith(k.cl, group, 2) },
		"%s: the group is not stable with its 2 members within %v of the cut ending (an id a client abandoned holds the rebalance)", e.rule, noGhost)
	e.assigned(noGhost, topic, partitions, a, b)
	send("after", 40)
	e.eventually(wait, func() bool { return d.count() == len(sent) }, "every record sent across the cut gets its callback")
	checkCallbacks(t, e, d, sent)
	e.eventuallyf(wait, func() bool { return len(s.missing(sent)) == 0 }, func() string {
		missing := s.missing(sent)
		return fmt.Sprintf("records sent before, during and after a cut in a rebalance: %d of %d never consumed, first: %v", len(missing), len(sent), first(missing, 5))
	})
	notStopped(t, e, doneA, "after a cut during a rebalance")
	notStopped(t, e, doneB, "after a cut during a rebalance")
	dups := dupCount(s)
	t.Logf("%s: %d records read, %d redelivered across a %v cut during a rebalance", e.rule, s.total(), dups, shortCut)
	// Commits run every CommitInterval (200ms): what a revoke or a cut
	// leaves uncommitted is read again, at most the records sent while
	// the cut held the commits back.
	assert.LessOrEqual(t, dups, len(sent)/2, "%s: redeliveries after a cut during a rebalance are bounded", e.rule)
}
