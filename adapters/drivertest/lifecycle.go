package drivertest

// Opening and closing: an unresponsive broker, Close from inside a
// handler or after one overran, bad callbacks, errors wrapped once.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

func testSilentBroker(t *testing.T, e *env) {
	b := e.h.NewBackend(t, []string{testcluster.SilentAddress(t)})
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
	e.run(c, func(ctx context.Context, _ polykafka.Record) error {
		// A context derived from the handler's, as a handler passes on.
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		err := c.CloseContext(dctx)
		select {
		case res <- result{err, time.Since(start)}:
		default:
		}
		return nil
	})
	select {
	case r := <-res:
		requireCode(t, e, r.err, polykafka.InvalidArgument, "CloseContext with a handler's context", "handler")
		assert.Less(t, r.took, time.Second, "%s: Close inside a handler fails at once instead of waiting CloseTimeout", e.rule)
	case <-time.After(wait):
		t.Fatalf("%s: the handler's Close did not return", e.rule)
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

// revokeHold, once armed, blocks a member in OnPartitionsRevoking until
// released, so that it does not rejoin: the other members' JoinGroups then
// wait for it.
type revokeHold struct {
	armed            atomic.Bool
	entered, release chan struct{}
	once             sync.Once
}

func newRevokeHold() *revokeHold {
	return &revokeHold{entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *revokeHold) OnPartitionsRevoking(ctx context.Context, _ []polykafka.TopicPartition) {
	if !h.armed.Load() {
		return
	}
	h.once.Do(func() { close(h.entered) })
	select {
	case <-h.release:
	case <-ctx.Done():
	}
}

// revokedSignal closes its channel the first time partitions are revoked.
type revokedSignal struct {
	armed atomic.Bool
	ch    chan struct{}
	once  sync.Once
}

func (r *revokedSignal) OnPartitionsRevoked(context.Context, []polykafka.TopicPartition) {
	if r.armed.Load() {
		r.once.Do(func() { close(r.ch) })
	}
}

// grewTo closes its channel when the member's discovery sees its topic
// reach n partitions.
type grewTo struct {
	n    int32
	ch   chan struct{}
	once sync.Once
}

func (g *grewTo) OnPartitionsDiscovered(gr discovery.Growth) {
	if gr.To >= g.n {
		g.once.Do(func() { close(g.ch) })
	}
}

// firstAssigned records the first partitions assigned once armed.
type firstAssigned struct {
	armed atomic.Bool
	mu    sync.Mutex
	tps   []polykafka.TopicPartition
	got   bool
}

func (f *firstAssigned) OnPartitionsAssigned(_ context.Context, tps []polykafka.TopicPartition) {
	if !f.armed.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.got {
		f.got, f.tps = true, append([]polykafka.TopicPartition(nil), tps...)
	}
}

func (f *firstAssigned) first() ([]polykafka.TopicPartition, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tps, f.got
}

// joinWaitSetup starts a case in which a member's JoinGroup waits for a
// member slow to give its partitions back (classic protocol only): a
// topic of 2 partitions, a group, and a revocation hold with its release
// (idempotent, and called at the end of the test).
func (e *env) joinWaitSetup(t *testing.T) (topic, group string, hold *revokeHold, release func()) {
	t.Helper()
	if e.h.GroupProtocol == consumer.GroupProtocolConsumer {
		t.Skip("classic protocol only: under KIP-848 a member joins by heartbeat and never waits for the others")
	}
	hold = newRevokeHold()
	var once sync.Once
	release = func() { once.Do(func() { close(hold.release) }) }
	t.Cleanup(release)
	return e.cluster.Topic(t, 2), e.cluster.Group(t), hold, release
}

// testCloseDuringJoin: a member closed while its JoinGroup waits for the
// rest of the group (here a member slow to give its partitions back)
// returns promptly and leaves the group: it neither waits for the join to
// complete nor stays in the group once closed. The kafka-go soak found
// why it matters: members whose Close waited for a join that a busy group
// kept from completing gave up, joined in the background, and held
// partitions nobody read. The member closed here has been in a generation
// (it has a member id to leave with); the rebalance is caused by growth,
// so that every JoinGroup of the group after it is that member's (on the
// embedded cluster the case waits for it to arrive).
func testCloseDuringJoin(t *testing.T, e *env) {
	topic, group, hold, release := e.joinWaitSetup(t)
	nothing := func(context.Context, polykafka.Record) error { return nil }
	after := &firstAssigned{}
	aGrew := &grewTo{n: 4, ch: make(chan struct{})}
	a := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{hold, after, aGrew}})
	e.run(a, nothing)
	bRevoked := &revokedSignal{ch: make(chan struct{})}
	b := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{bRevoked}})
	e.run(b, nothing)
	e.eventually(wait, func() bool { return len(a.Assignment()) == 1 && len(b.Assignment()) == 1 },
		"%s: two members did not get one partition each", e.rule)

	var joins atomic.Int32
	if f := e.cluster.Fake(); f != nil {
		f.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
			f.KeepControl()
			if req.(*kmsg.JoinGroupRequest).Group == group {
				joins.Add(1)
			}
			return nil, nil, false
		})
	}
	hold.armed.Store(true)
	bRevoked.armed.Store(true)
	e.cluster.AddPartitions(t, topic, 4)
	// The first member must have seen the growth too, so that its next
	// join reports 4 partitions whoever leads (its own revocation is
	// held, not its discovery).
	for _, ch := range []chan struct{}{hold.entered, bRevoked.ch, aGrew.ch} {
		select {
		case <-ch:
		case <-time.After(wait):
			t.Fatalf("%s: the members were not asked to give their partitions back within %v of the topic growing", e.rule, wait)
		}
	}
	if e.cluster.Fake() != nil {
		// The first member holds its revocation, so this JoinGroup is the
		// second member's.
		e.eventually(wait, func() bool { return joins.Load() > 0 }, "%s: the second member did not rejoin", e.rule)
	}
	_ = e.timedClose("Close of a member whose JoinGroup waits for the group", b.Close)
	after.armed.Store(true)
	release()
	// The closed member left: the generation the first member joins next
	// is its alone, with every partition. A member that stayed would get
	// half of them until its session expired.
	e.eventually(noGhost, func() bool { _, ok := after.first(); return ok },
		"%s: the remaining member was assigned nothing within %v of the closed one leaving (a member that stayed is expelled only at its session timeout)", e.rule, noGhost)
	tps, _ := after.first()
	assert.Len(t, tps, 4, "%s: the first assignment after the close is the remaining member's alone (the closed member left the group): %v", e.rule, tps)
	e.eventually(wait, func() bool { return e.members(group) == 1 },
		"%s: the closed member is still in the group (%d members)", e.rule, e.members(group))
}

// testCloseDuringFirstJoin: a member closed during its very first
// JoinGroup, while that join waits for a member slow to give its
// partitions back, leaves nothing in the group. A client that joins with
// JoinGroup v1 (kafka-go) gets a new member's id only in the answer: if
// its join is cut, the coordinator keeps a member that no client knows,
// assigns it partitions and waits for it in every rebalance until its
// session expires (kfake never expires it). The crossbackend rolling
// migration found it: a member stopped while it was still joining held
// the group for minutes.
func testCloseDuringFirstJoin(t *testing.T, e *env) {
	topic, group, hold, release := e.joinWaitSetup(t)
	nothing := func(context.Context, polykafka.Record) error { return nil }
	a := e.newConsumer(group, []string{topic}, &consumer.Options{Hooks: []any{hold}})
	e.run(a, nothing)
	e.eventually(wait, func() bool { return len(a.Assignment()) == 2 }, "%s: the first member did not get both partitions", e.rule)
	hold.armed.Store(true)
	b := e.newConsumer(group, []string{topic}, &consumer.Options{})
	e.run(b, nothing)
	// b's JoinGroup began the rebalance, and it waits for a, which holds
	// its revocation.
	select {
	case <-hold.entered:
	case <-time.After(wait):
		t.Fatalf("%s: the first member was not asked to give its partitions back within %v of the second one joining", e.rule, wait)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	// A Close that cuts the join returns at once, before the release; one
	// that lets the join finish returns after it. Either way the member
	// must be gone once the rebalance it is part of is over.
	var closeErr error
	returned := false
	select {
	case closeErr = <-closed:
		returned = true
	case <-time.After(2 * time.Second):
	}
	release()
	if !returned {
		select {
		case closeErr = <-closed:
		case <-time.After(closeBound):
			t.Fatalf("%s: Close of a member in its first join did not return within %v of the group's rebalance being released", e.rule, closeBound)
		}
	}
	assert.NoError(t, closeErr, "%s: Close", e.rule)
	e.eventuallyf(noGhost, func() bool { return len(a.Assignment()) == 2 && e.stableWith(e.cluster, group, 1) }, func() string {
		return fmt.Sprintf("within %v of the rebalance being released, the remaining member owns every partition alone in a stable group: owns %v, %d members (a member left behind by the closed one's join is expelled only at its session timeout)",
			noGhost, a.Assignment(), e.members(group))
	})
}
