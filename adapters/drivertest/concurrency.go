package drivertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/offsetstore"
)

// Cases of consumer.Options.Concurrency, Ordering, MaxBufferedRecords and
// ErrorPolicy.DeadLetter.

// inflight watches handler calls: which lanes (partition, or partition and
// key) have a call in progress, and the overlaps it saw.
type inflight struct {
	mu        sync.Mutex
	lanes     map[string]int
	total     int
	peak      int
	overlap   []string // lanes seen with two calls at once
	order     map[string][]int64
	seenTwo   chan struct{}
	closeOnce sync.Once
}

func newInflight() *inflight {
	return &inflight{lanes: make(map[string]int), order: make(map[string][]int64), seenTwo: make(chan struct{})}
}

// enter records a call on lane (and appends off to the lane's order).
func (f *inflight) enter(lane string, off int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lanes[lane]++
	if f.lanes[lane] > 1 {
		f.overlap = append(f.overlap, lane)
	}
	f.order[lane] = append(f.order[lane], off)
	f.total++
	f.peak = max(f.peak, f.total)
	if f.total >= 2 {
		f.closeOnce.Do(func() { close(f.seenTwo) })
	}
}

func (f *inflight) leave(lane string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lanes[lane]--
	f.total--
}

func laneOf(r polykafka.Record, byKey bool) string {
	if byKey {
		return fmt.Sprintf("%d/%s", r.Partition, r.Key)
	}
	return strconv.Itoa(int(r.Partition))
}

// produceKeyed writes n records to each of partitions, keyed k0..k(keys-1)
// in turn.
func (e *env) produceKeyed(topic string, n, keys int, partitions ...int32) int {
	var rs []*kgo.Record
	for _, p := range partitions {
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i%keys)), Value: []byte(fmt.Sprintf("v-%d-%d", p, i))})
		}
	}
	e.cluster.Produce(e.t, rs...)
	return len(rs)
}

func testConcurrentOrdering(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	const perPartition, keys = 30, 4
	total := e.produceKeyed(topic, perPartition, keys, 0, 1, 2)
	for _, mode := range []consumer.Ordering{consumer.ByPartition, consumer.ByKey, consumer.Unordered} {
		t.Run(mode.String(), func(t *testing.T) {
			group := e.cluster.Group(t)
			f := newInflight()
			s := newSink()
			c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Concurrency: 8, Ordering: mode, Commit: consumer.CommitManual}))
			lane := func(r polykafka.Record) string {
				switch mode {
				case consumer.ByKey:
					return laneOf(r, true)
				case consumer.ByPartition:
					return laneOf(r, false)
				}
				return "all" // Unordered: overlaps are expected
			}
			done := e.run(c, func(ctx context.Context, r polykafka.Record) error {
				l := lane(r)
				f.enter(l, r.Offset)
				defer f.leave(l)
				// The first calls wait for a second call to start, so
				// that a consumer that runs one handler at a time fails
				// here instead of passing by luck.
				select {
				case <-f.seenTwo:
				case <-time.After(5 * time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
				time.Sleep(time.Millisecond) // simulated I/O: lets calls overlap
				s.add(r)
				return nil
			})
			e.eventually(wait, func() bool { return s.total() >= total }, "%s: %d of %d records processed", mode, s.total(), total)
			f.mu.Lock()
			defer f.mu.Unlock()
			assert.GreaterOrEqual(t, f.peak, 2, "%s: %s: handlers ran in parallel (Concurrency 8)", e.rule, mode)
			if mode != consumer.Unordered {
				assert.Empty(t, f.overlap, "%s: %s: no two records of one lane were in a handler at once", e.rule, mode)
				for l, offs := range f.order {
					assert.IsIncreasing(t, offs, "%s: %s: lane %s handled in offset order", e.rule, mode, l)
				}
			}
			assert.Equal(t, total, s.total(), "%s: %s: each record handled once", e.rule, mode)
			// A handler counts its record before it returns, and the
			// worker reports it after: Commit until every partition's
			// commit reaches its end.
			var committed map[int32]offsetstore.Position
			e.eventuallyf(wait, func() bool {
				require.NoError(t, c.Commit(e.ctx(wait)), "%s: Commit", e.rule)
				committed = e.positions(t, group, topic)
				for p := range int32(3) {
					if committed[p].Offset != int64(perPartition) {
						return false
					}
				}
				return true
			}, func() string { return fmt.Sprintf("%s: every partition committed up to its end: %v", mode, committed) })
			require.NoError(t, c.Close())
			require.NoError(t, e.returned(done, "Run after Close"))
		})
	}
}

// testConcurrentCommitPrefix checks the commit rule: with one record stuck
// in its handler, every later record done, nothing past the stuck record is
// committed; with Poll, marking out of order commits only the contiguous
// marked prefix.
func testConcurrentCommitPrefix(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	const n, stuck = 20, int64(5)
	e.produceKeyed(topic, n, n, 0) // distinct keys
	for _, mode := range []consumer.Ordering{consumer.ByKey, consumer.Unordered} {
		t.Run("Run"+mode.String(), func(t *testing.T) {
			group := group + mode.String()
			release := make(chan struct{})
			var done atomic.Int32
			c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Concurrency: 4, Ordering: mode, Commit: consumer.CommitManual}))
			e.run(c, func(ctx context.Context, r polykafka.Record) error {
				if r.Offset == stuck {
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				done.Add(1)
				return nil
			})
			e.eventually(wait, func() bool { return done.Load() == n-1 }, "%d of %d records around the stuck one processed", done.Load(), n-1)
			// The handlers count a record before they return, and a
			// worker reports a batch's records after: Commit until the
			// commit reaches the stuck record, and never past it.
			e.eventually(wait, func() bool {
				require.NoError(t, c.Commit(e.ctx(wait)))
				at := e.positions(t, group, topic)[0].Offset
				require.LessOrEqual(t, at, stuck,
					"%s: %s: every record after offset %d is processed, but the commit stops at the record still in its handler", e.rule, mode, stuck)
				return at == stuck
			}, "%s: the commit did not reach offset %d, the record still in its handler", mode, stuck)
			close(release)
			e.eventually(wait, func() bool { return done.Load() == n }, "the stuck record was not processed after its release")
			// As above, the count moves before the worker reports the
			// record: Commit until the commit reaches the end.
			e.eventually(wait, func() bool {
				require.NoError(t, c.Commit(e.ctx(wait)))
				return e.positions(t, group, topic)[0].Offset == int64(n)
			}, "%s: once the stuck record is processed the commit moves to the end", mode)
		})
	}
	t.Run("PollMarkOutOfOrder", func(t *testing.T) {
		group := group + "poll"
		c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Concurrency: 4, Commit: consumer.CommitManual}))
		var got []*polykafka.Record
		ctx := e.ctx(wait)
		for len(got) < n {
			rs, err := c.Poll(ctx)
			require.NoError(t, err, "%s: Poll", e.rule)
			got = append(got, rs...)
		}
		for i := len(got) - 1; i >= 0; i-- { // backwards, skipping the stuck one
			if got[i].Offset != stuck {
				c.Mark(got[i])
			}
		}
		require.NoError(t, c.Commit(ctx))
		assert.Equal(t, stuck, e.positions(t, group, topic)[0].Offset, "%s: Poll: records marked out of order commit only the contiguous marked prefix", e.rule)
		c.Mark(got[stuck])
		require.NoError(t, c.Commit(ctx))
		assert.Equal(t, int64(n), e.positions(t, group, topic)[0].Offset, "%s: Poll: marking the gap moves the commit to the end", e.rule)
	})
}

// testConcurrentRevokeLost: a revoke waits for the handlers in flight on
// the revoked partitions and commits their records, so the next owner
// does not see them again; a loss cancels their contexts and commits
// nothing of them.
func testConcurrentRevokeLost(t *testing.T, e *env) {
	t.Run("Revoke", func(t *testing.T) {
		topic, group := e.cluster.Topic(t, 4), e.cluster.Group(t)
		e.produceKeyed(topic, 3, 3, 0, 1, 2, 3)
		opts := earliestOpts(consumer.Options{Concurrency: 8, Ordering: consumer.ByKey, Commit: consumer.CommitManual})
		var slow atomic.Int32
		release := make(chan struct{})
		sa := newSink()
		a := e.newConsumer(group, []string{topic}, opts)
		e.run(a, func(ctx context.Context, r polykafka.Record) error {
			if r.Offset == 2 { // the last record of each partition is slow
				slow.Add(1)
				<-release // not ctx: a revoke must wait for it
			}
			sa.add(r)
			return nil
		})
		e.eventually(wait, func() bool { return slow.Load() == 4 && sa.total() == 8 }, "the first member did not reach its 4 slow records")
		sb := newSink()
		b := e.newConsumer(group, []string{topic}, opts)
		e.run(b, sb.handler)
		// The slow handlers return after the rebalance began: a member
		// that committed at revoke without waiting for them would leave
		// their records to the new owner.
		go func() {
			time.Sleep(time.Second)
			close(release)
		}()
		e.eventually(wait, func() bool { return len(b.Assignment()) == 2 && len(a.Assignment()) == 2 }, "two members did not split 4 partitions 2/2")
		more := e.produce(topic, "after", 2, 0, 1, 2, 3)
		e.eventually(wait, func() bool { return len(union(sa, sb).missing(more)) == 0 }, "records after the rebalance were not all read")
		for _, tp := range b.Assignment() {
			offs := sb.offsets(tp)
			require.NotEmpty(t, offs, "the new owner of %s read nothing", tp)
			assert.Equal(t, int64(3), offs[0], "%s: the new owner of %s starts after the record that was in a handler at revoke (the revoke waited for it and committed it)", e.rule, tp)
		}
	})
	t.Run("Lost", func(t *testing.T) {
		if e.cluster.Fake() == nil {
			t.Skip("fault injection needs the in-process cluster; this case does not run against KAFKA_BROKERS")
		}
		topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
		e.produceKeyed(topic, 3, 3, 0, 1)
		lost := &lostHook{}
		var blocked, cancelled atomic.Int32
		var firstSeen sync.Map
		// checked holds the records delivered again after the rejoin
		// until the commits made at the loss are read: a member that
		// rejoins at once (KIP-848) would otherwise process them and
		// commit past offset 1, rightly, before the check.
		checked := make(chan struct{})
		s := newSink()
		c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Concurrency: 4, Ordering: consumer.ByKey, Hooks: []any{lost}}))
		e.run(c, func(ctx context.Context, r polykafka.Record) error {
			_, again := firstSeen.LoadOrStore(r.TopicPartition().String()+"@"+strconv.FormatInt(r.Offset, 10), true)
			if r.Offset == 1 && !again {
				blocked.Add(1)
				<-ctx.Done() // only a loss (or the end of the test) ends it
				cancelled.Add(1)
				return ctx.Err()
			}
			if again {
				select {
				case <-checked:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			s.add(r)
			return nil
		})
		e.eventually(wait, func() bool { return blocked.Load() == 2 && s.total() == 4 }, "the handlers did not reach the records at offset 1")
		loseSession(e, group)
		e.eventually(wait, func() bool { return lost.n.Load() > 0 }, "HookLost was not called after the member was fenced")
		e.eventually(wait, func() bool { return cancelled.Load() == 2 }, "%s: the contexts of the handlers in flight on lost partitions were cancelled", e.rule)
		for p, pos := range e.positions(t, group, topic) {
			assert.LessOrEqual(t, pos.Offset, int64(1), "%s: nothing past the record in flight at the loss is committed (partition %d)", e.rule, p)
		}
		close(checked)
		// The member rejoins and processes the records again.
		e.eventually(wait, func() bool {
			tp0, tp1 := polykafka.TopicPartition{Topic: topic, Partition: 0}, polykafka.TopicPartition{Topic: topic, Partition: 1}
			return slicesContain(s.offsets(tp0), 1) && slicesContain(s.offsets(tp1), 1)
		}, "the records in flight at the loss were not delivered again after the rejoin")
	})
}

func slicesContain(xs []int64, x int64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// testDeadLetter: a record that fails for good is written to its
// dead-letter topic with its key, value and headers and the polykafka.dlt.*
// headers, and counts as processed once written.
func testDeadLetter(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	dlt := topic + ".DLT"
	require.NoError(t, e.cluster.CreateTopic(e.ctx(wait), dlt, 1), "create the dead-letter topic")
	custom := topic + ".custom"
	require.NoError(t, e.cluster.CreateTopic(e.ctx(wait), custom, 1), "create the custom dead-letter topic")
	e.cluster.Produce(t,
		&kgo.Record{Topic: topic, Partition: 0, Key: []byte("k0"), Value: []byte("ok-0")},
		&kgo.Record{Topic: topic, Partition: 0, Key: []byte("kb"), Value: []byte("bad-0"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("hv")}}},
		&kgo.Record{Topic: topic, Partition: 0, Key: []byte("k1"), Value: []byte("ok-1")},
		&kgo.Record{Topic: topic, Partition: 1, Key: []byte("k2"), Value: []byte("ok-2")},
	)
	p := e.newProducer(nil)
	cause := errors.New("cannot process this one")
	for _, tc := range []struct {
		name  string
		opts  consumer.Options
		topic string
	}{
		{"Concurrent", consumer.Options{Concurrency: 4, Ordering: consumer.ByKey,
			OnError: consumer.ErrorPolicy{Retry: true, MaxAttempts: 2, Backoff: 10 * time.Millisecond, DeadLetter: &consumer.DeadLetter{Producer: p}}}, dlt},
		{"SerialTopicFunc", consumer.Options{
			OnError: consumer.ErrorPolicy{DeadLetter: &consumer.DeadLetter{Producer: p, Topic: func(polykafka.Record) string { return custom }}}}, custom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group := e.cluster.Group(t)
			opts := tc.opts
			opts.Commit = consumer.CommitManual
			var attempts atomic.Int32
			s := newSink()
			c := e.newConsumer(group, []string{topic}, earliestOpts(opts))
			before := time.Now().Add(-time.Second)
			e.run(c, func(_ context.Context, r polykafka.Record) error {
				if string(r.Value) == "bad-0" {
					attempts.Add(1)
					return cause
				}
				s.add(r)
				return nil
			})
			e.eventually(wait, func() bool { return s.total() == 3 }, "the good records were not processed")
			want := int32(1)
			if tc.opts.OnError.MaxAttempts == 2 {
				want = 2
			}
			e.eventually(wait, func() bool {
				if err := c.Commit(e.ctx(wait)); err != nil {
					return false
				}
				return e.positions(t, group, topic)[0].Offset == 3
			}, "%s: the dead-lettered record counts as processed: partition 0 is committed past it", e.rule)
			assert.Equal(t, want, attempts.Load(), "%s: the handler was tried as the policy says", e.rule)

			ds := newSink()
			dc := e.newConsumer(e.cluster.Group(t), []string{tc.topic}, earliestOpts(consumer.Options{}))
			e.run(dc, ds.handler)
			e.eventually(wait, func() bool { return ds.total() >= 1 }, "%s: nothing arrived on the dead-letter topic %s", e.rule, tc.topic)
			r, ok := ds.recordAt(polykafka.TopicPartition{Topic: tc.topic, Partition: 0}, 0)
			require.True(t, ok)
			assert.Equal(t, "kb", string(r.Key), "%s: the dead-letter record keeps the key", e.rule)
			assert.Equal(t, "bad-0", string(r.Value), "%s: the dead-letter record keeps the value", e.rule)
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			assert.Equal(t, "hv", h["h"], "%s: the original headers are kept", e.rule)
			assert.Equal(t, topic, h[consumer.HeaderDLTTopic], "%s: topic header", e.rule)
			assert.Equal(t, "0", h[consumer.HeaderDLTPartition], "%s: partition header", e.rule)
			assert.Equal(t, "1", h[consumer.HeaderDLTOffset], "%s: offset header", e.rule)
			assert.Equal(t, cause.Error(), h[consumer.HeaderDLTError], "%s: error header", e.rule)
			assert.Equal(t, strconv.Itoa(int(want)), h[consumer.HeaderDLTAttempts], "%s: attempts header", e.rule)
			assert.Equal(t, group, h[consumer.HeaderDLTGroup], "%s: group header", e.rule)
			at, err := time.Parse(time.RFC3339Nano, h[consumer.HeaderDLTTime])
			if assert.NoError(t, err, "%s: time header is RFC 3339", e.rule) {
				assert.True(t, at.After(before) && at.Before(time.Now().Add(time.Second)), "%s: time header is the time of the dead-lettering: %v", e.rule, at)
			}
			_, err = strconv.ParseInt(h[consumer.HeaderDLTTimestamp], 10, 64)
			assert.NoError(t, err, "%s: original timestamp header", e.rule)
		})
	}
}

// testDeadLetterFailureStops: a dead-letter write that fails stops the
// consumer with that error, and the record is not committed: the next
// member of the group gets it again.
func testDeadLetterFailureStops(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produceKeyed(topic, 6, 6, 0)
	p := e.newProducer(nil)
	require.NoError(t, p.Close(), "close the dead-letter producer: its writes fail")
	opts := earliestOpts(consumer.Options{Concurrency: 4, Ordering: consumer.Unordered, Commit: consumer.CommitManual,
		OnError: consumer.ErrorPolicy{DeadLetter: &consumer.DeadLetter{Producer: p}}})
	c := e.newConsumer(group, []string{topic}, opts)
	done := e.run(c, func(_ context.Context, r polykafka.Record) error {
		if r.Offset == 2 {
			return errors.New("fails")
		}
		return nil
	})
	err := e.returned(done, "Run after a failed dead-letter write")
	require.Error(t, err, "%s: a failed dead-letter write stops the consumer", e.rule)
	assert.Equal(t, polykafka.Closed, polykafka.Code(err), "%s: Run returns the dead-letter write's error (closed producer): %v", e.rule, err)
	assert.Contains(t, err.Error(), "dead-letter", "%s: the error says the dead-letter write failed", e.rule)
	require.NoError(t, c.Close())
	assert.LessOrEqual(t, e.positions(t, group, topic)[0].Offset, int64(2), "%s: nothing at or past the record that could not be dead-lettered is committed", e.rule)

	s := newSink()
	c2 := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{}))
	e.run(c2, s.handler)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.eventually(wait, func() bool { return slicesContain(s.offsets(tp), 2) }, "%s: the record is never dropped: the next member reads it", e.rule)
}

// testBoundedBuffer: with handlers slower than the backlog, the records
// the member holds reach MaxBufferedRecords and stay within it (fetching is
// paused), and every record is processed once the handlers go on.
func testBoundedBuffer(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	const n, limit = 400, 40
	e.produceKeyed(topic, n/2, n, 0, 1)
	var finished atomic.Int64
	release := make(chan struct{})
	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Concurrency: 4, Ordering: consumer.Unordered, MaxBufferedRecords: limit, MaxPollRecords: 10}))
	e.run(c, func(ctx context.Context, r polykafka.Record) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		finished.Add(1)
		return nil
	})
	e.eventually(wait, func() bool { return c.Buffered() >= limit }, "the member did not fill its buffer (%d of %d)", c.Buffered(), limit)
	// Watch for a while: a member that goes on fetching exceeds the bound.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		require.LessOrEqual(t, c.Buffered(), limit, "%s: the member holds at most MaxBufferedRecords records", e.rule)
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	e.eventually(wait, func() bool { return finished.Load() == n }, "%d of %d records processed after the handlers went on", finished.Load(), n)
	assert.LessOrEqual(t, c.Buffered(), limit)
}

// testCloseInsideConcurrentHandler: CloseContext called with the context
// of a handler running on one of the Concurrency goroutines fails at once,
// as from the serial handler, instead of waiting for that very handler.
func testCloseInsideConcurrentHandler(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	e.produceKeyed(topic, 3, 3, 0, 1)
	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Concurrency: 4, Ordering: consumer.Unordered, CloseTimeout: 20 * time.Second}))
	res := make(chan error, 1)
	e.run(c, func(ctx context.Context, _ polykafka.Record) error {
		dctx, cancel := context.WithTimeout(ctx, time.Minute) // derived contexts are recognised too
		defer cancel()
		select {
		case res <- c.CloseContext(dctx):
		default:
		}
		return nil
	})
	select {
	case err := <-res:
		requireCode(t, e, err, polykafka.InvalidArgument, "CloseContext from inside a concurrent handler", "handler")
	case <-time.After(wait):
		t.Fatalf("%s: the handler never ran", e.rule)
	}
	assert.NoError(t, c.Close(), "%s: Close from outside still works afterwards", e.rule)
}
