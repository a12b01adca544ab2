package drivertest

// Broker faults injected with kfake's request control (in-process cluster
// only): errors and delays on OffsetCommit, Fetch, Metadata and Heartbeat,
// and a moved group coordinator. Retryable faults are retried by the
// portable layer; the others surface as classified errors; nothing is lost
// and no offset is committed past an unprocessed record.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
)

// needFake returns the in-process cluster, or skips: fault injection is
// kfake's request control, which a real cluster does not have.
func needFake(t *testing.T, e *env) *kfake.Cluster {
	t.Helper()
	fake := e.cluster.Fake()
	if fake == nil {
		t.Skip("fault injection needs the in-process cluster; this case does not run against KAFKA_BROKERS")
	}
	return fake
}

// commitFaults answers the OffsetCommit requests of one group with queued
// faults, one request each, in turn: a Kafka error code on every partition
// of the request, or (code 0) a delay before the broker handles the request
// as usual. With no fault queued, requests pass.
type commitFaults struct {
	mu     sync.Mutex
	queue  []commitFault
	always int16        // answer every request with this code while non-zero
	hits   atomic.Int32 // requests that got a fault
}

type commitFault struct {
	code  int16
	delay time.Duration
}

func injectCommitFaults(t *testing.T, fake *kfake.Cluster, group string) *commitFaults {
	f := &commitFaults{}
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		if r.Group != group {
			return nil, nil, false
		}
		f.mu.Lock()
		var fault commitFault
		switch {
		case f.always != 0:
			fault.code = f.always
		case len(f.queue) > 0:
			fault = f.queue[0]
			f.queue = f.queue[1:]
		default:
			f.mu.Unlock()
			return nil, nil, false
		}
		f.mu.Unlock()
		f.hits.Add(1)
		if fault.code == 0 {
			// The fault: a broker slower than the client's deadline.
			fake.SleepControl(func() {
				select {
				case <-time.After(fault.delay):
				case <-ended:
				}
			})
			return nil, nil, false
		}
		return commitErrorResponse(r, fault.code), nil, true
	})
	return f
}

// add queues faults and resets the count of faults served.
func (f *commitFaults) add(fs ...commitFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, fs...)
	f.hits.Store(0)
}

func (f *commitFaults) setAlways(code int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always = code
	f.hits.Store(0)
}

func (f *commitFaults) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue)
}

func commitErrorResponse(r *kmsg.OffsetCommitRequest, code int16) *kmsg.OffsetCommitResponse {
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// pollN polls c until it has n records, failing the test after wait.
func pollN(t *testing.T, e *env, c *consumer.Consumer, n int) []*polykafka.Record {
	t.Helper()
	ctx := e.ctx(wait)
	var got []*polykafka.Record
	for len(got) < n {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		rs, err := c.Poll(pctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		require.NoError(t, err, "%s: Poll", e.rule)
		got = append(got, rs...)
	}
	return got
}

func testInjectedCommitFaults(t *testing.T, e *env) {
	fake := needFake(t, e)
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	e.produce(topic, "v", 10, 0)
	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Commit: consumer.CommitManual}))
	got := pollN(t, e, c, 10)
	faults := injectCommitFaults(t, fake, group)
	committedAt := func() int64 { return e.positions(t, group, topic)[0].Offset }
	commit := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return c.Commit(ctx)
	}

	// Retryable: the coordinator is not available, was not the
	// coordinator, or timed out. Commit retries (the portable policy) and
	// stores the marked offset, not one past it.
	c.Mark(got[:3]...)
	faults.add(commitFault{code: kerr.CoordinatorNotAvailable.Code}, commitFault{code: kerr.NotCoordinator.Code}, commitFault{code: kerr.RequestTimedOut.Code})
	require.NoError(t, commit(20*time.Second), "%s: Commit through COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR and REQUEST_TIMED_OUT", e.rule)
	assert.Zero(t, faults.pending(), "%s: every injected commit fault was served", e.rule)
	assert.Equal(t, int64(3), committedAt(), "%s: the retried Commit stores the offset after the last marked record", e.rule)

	// Not retryable: an authorization failure surfaces at once, classified,
	// and nothing is committed.
	c.Mark(got[:4]...)
	faults.setAlways(kerr.GroupAuthorizationFailed.Code)
	err := commit(20 * time.Second)
	requireCode(t, e, err, polykafka.PermissionDenied, "Commit refused with GROUP_AUTHORIZATION_FAILED")
	assert.Equal(t, int32(1), faults.hits.Load(), "%s: a non-retryable commit failure is not retried", e.rule)
	faults.setAlways(0)
	assert.Equal(t, int64(3), committedAt(), "%s: a refused Commit stores nothing", e.rule)

	// Rebalance in progress: Commit says so (the rebalance brings a new
	// assignment, whose commits the member makes); the next Commit stores.
	faults.add(commitFault{code: kerr.RebalanceInProgress.Code})
	err = commit(20 * time.Second)
	requireCode(t, e, err, polykafka.Rebalancing, "Commit refused with REBALANCE_IN_PROGRESS")
	assert.Equal(t, int64(3), committedAt(), "%s: a Commit refused as rebalancing stores nothing", e.rule)
	require.NoError(t, commit(20*time.Second), "%s: Commit after REBALANCE_IN_PROGRESS", e.rule)
	assert.Equal(t, int64(4), committedAt(), "%s: Commit after REBALANCE_IN_PROGRESS", e.rule)

	// A broker slower than the caller's deadline: Commit returns by its
	// deadline with an Unavailable error that still says the deadline
	// expired; a later Commit stores.
	c.Mark(got[:5]...)
	faults.add(commitFault{delay: 3 * time.Second})
	start := time.Now()
	err = commit(time.Second)
	requireCode(t, e, err, polykafka.Unavailable, "Commit whose coordinator answers after its 1s deadline")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: the timed-out Commit's error still says its deadline expired", e.rule)
	assert.Less(t, time.Since(start), 2500*time.Millisecond, "%s: Commit returned long after its 1s deadline", e.rule)
	require.NoError(t, commit(20*time.Second), "%s: Commit after a timed-out Commit", e.rule)
	assert.Equal(t, int64(5), committedAt(), "%s: Commit after a timed-out Commit", e.rule)

	// The coordinator moves: the member finds the new one. Last, because
	// a member may rejoin when its coordinator moves (kafka-go does), and
	// the revoke commit of that rejoin would commit what the steps above
	// marked before they commit it themselves.
	old := fake.CoordinatorFor(group)
	e.eventually(10*time.Second, func() bool { fake.RehashCoordinators(); return fake.CoordinatorFor(group) != old },
		"the group's coordinator did not move")
	c.Mark(got[:6]...)
	require.NoError(t, commit(20*time.Second), "%s: Commit after the group coordinator moved", e.rule)
	assert.Equal(t, int64(6), committedAt(), "%s: Commit after the coordinator moved", e.rule)

	// Nothing past the marked records was ever committed, and a new member
	// resumes at the first unmarked record.
	require.NoError(t, c.Close(), "%s: Close", e.rule)
	s := newSink()
	c2 := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{}))
	e.run(c2, s.handler)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.eventually(wait, func() bool { return len(s.offsets(tp)) >= 4 }, "the next member did not read the unmarked records")
	assert.Equal(t, []int64{6, 7, 8, 9}, s.offsets(tp), "%s: the next member resumes at the first unmarked record", e.rule)
}

// topicID returns topic's id from the cluster's metadata (Fetch v13+ names
// topics by id).
func topicID(t *testing.T, e *env, topic string) [16]byte {
	t.Helper()
	md, err := e.cluster.Admin().Metadata(e.ctx(10*time.Second), topic)
	require.NoError(t, err, "metadata of %s", topic)
	return md.Topics[topic].ID
}

// fetchFaults answers Fetch requests that ask for partitions of one topic
// with an error code on every partition asked for: the next n requests,
// or every request while always is set.
type fetchFaults struct {
	mu     sync.Mutex
	n      int
	always int16
	hits   atomic.Int32
}

func injectFetchFaults(t *testing.T, e *env, fake *kfake.Cluster, topic string) *fetchFaults {
	id := topicID(t, e, topic)
	f := &fetchFaults{}
	var code int16
	fake.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		r := req.(*kmsg.FetchRequest)
		ours := false
		for _, rt := range r.Topics {
			if (rt.Topic == topic || rt.TopicID == id) && len(rt.Partitions) > 0 {
				ours = true
			}
		}
		f.mu.Lock()
		active := f.always != 0 || f.n > 0
		f.mu.Unlock()
		if !ours {
			if active && r.SessionEpoch > 0 {
				// An incremental fetch of a session (KIP-227) lists only
				// changed partitions: end the session, so that the next
				// request asks for the topic's partitions again.
				resp := r.ResponseKind().(*kmsg.FetchResponse)
				resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
				return resp, nil, true
			}
			return nil, nil, false
		}
		f.mu.Lock()
		switch {
		case f.always != 0:
			code = f.always
		case f.n > 0:
			f.n--
			code = kerr.NotLeaderForPartition.Code
		default:
			f.mu.Unlock()
			return nil, nil, false
		}
		f.mu.Unlock()
		f.hits.Add(1)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
				sp.RecordBatches = []byte{} // empty, not null: clients reject a null record set
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return f
}

func testInjectedFetchFaults(t *testing.T, e *env) {
	fake := needFake(t, e)
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	before := e.produce(topic, "before", 10, 0, 1)
	faults := injectFetchFaults(t, e, fake, topic)
	s := newSink()
	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{}))
	done := e.run(c, s.handler)
	e.received(s, before, "records before the fetch faults")

	// Retryable: NOT_LEADER_OR_FOLLOWER makes the client look the leader
	// up again and fetch again; the consumer goes on, nothing lost or
	// read twice.
	faults.mu.Lock()
	faults.n = 2
	faults.mu.Unlock()
	e.eventually(wait, func() bool { return faults.hits.Load() > 0 }, "no fetch reached the injected fault")
	mid := e.produce(topic, "mid", 10, 0, 1)
	e.received(s, mid, "records produced while fetches failed with NOT_LEADER_OR_FOLLOWER")
	notStopped(t, e, done, "after retryable fetch errors")
	assert.Zero(t, dupCount(s), "%s: a retried fetch reads no record twice", e.rule)
	e.eventually(wait, func() bool {
		pos := e.positions(t, group, topic)
		return pos[0].Offset == 20 && pos[1].Offset == 20
	}, "the records read are committed")

	// Not retryable: TOPIC_AUTHORIZATION_FAILED stops the consumer with a
	// PermissionDenied error; nothing past what was processed is committed,
	// and what was not processed is read by the next member.
	faults.mu.Lock()
	faults.always = kerr.TopicAuthorizationFailed.Code
	faults.mu.Unlock()
	late := e.produce(topic, "late", 5, 0, 1)
	err := e.returned(done, "Run goes on after fetches fail with TOPIC_AUTHORIZATION_FAILED")
	requireCode(t, e, err, polykafka.PermissionDenied, "Run whose fetches fail with TOPIC_AUTHORIZATION_FAILED")
	require.NoError(t, c.Close(), "%s: Close after the consumer stopped", e.rule)
	pos := e.positions(t, group, topic)
	for p := int32(0); p < 2; p++ {
		tp := polykafka.TopicPartition{Topic: topic, Partition: p}
		assert.Equal(t, int64(len(s.offsets(tp))), pos[p].Offset, "%s: p%d is committed exactly up to the records processed", e.rule, p)
	}
	faults.mu.Lock()
	faults.always = 0
	faults.mu.Unlock()
	// A fetch in flight when the fault began may have brought some late
	// records: those were processed (and committed); the rest are the next
	// member's.
	unread := s.missing(late)
	s2 := newSink()
	e.run(e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{})), s2.handler)
	e.received(s2, unread, "records not processed before the consumer stopped, read by the next member")
	e.noneOf(s2, append(append([]string(nil), mid...), s.receivedOf(late)...), "the next member read records committed before the fault")
}

// metadataFaults answers Metadata requests naming one topic with an error
// code on the topic until stop.
func injectMetadataFaults(t *testing.T, e *env, fake *kfake.Cluster, topic string, code int16) (stop func(), hits *atomic.Int32) {
	// The brokers and cluster id of the answer, asked before any fault.
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	base, err := req.RequestWith(e.ctx(10*time.Second), e.cluster.Client())
	require.NoError(t, err, "metadata of %s", topic)
	id := topicID(t, e, topic)
	var stopped atomic.Bool
	hits = new(atomic.Int32)
	fake.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if stopped.Load() {
			return nil, nil, false // dropped: the fault is over
		}
		fake.KeepControl()
		r := req.(*kmsg.MetadataRequest)
		ours := false
		for _, rt := range r.Topics {
			if (rt.Topic != nil && *rt.Topic == topic) || rt.TopicID == id {
				ours = true
			}
		}
		if !ours {
			return nil, nil, false
		}
		hits.Add(1)
		resp := *base
		resp.Version = r.Version
		resp.Topics = nil
		for _, rt := range r.Topics {
			st := kmsg.NewMetadataResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			st.ErrorCode = code
			resp.Topics = append(resp.Topics, st)
		}
		return &resp, nil, true
	})
	return func() { stopped.Store(true) }, hits
}

func testInjectedMetadataFaults(t *testing.T, e *env) {
	fake := needFake(t, e)
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	want := e.produce(topic, "v", 5, 0, 1)

	// Retryable: LEADER_NOT_AVAILABLE on the topic for a while. New asks
	// again until the cluster answers (within its deadline).
	stop, hits := injectMetadataFaults(t, e, fake, topic, kerr.LeaderNotAvailable.Code)
	time.AfterFunc(1500*time.Millisecond, stop)
	c, err := consumer.New(e.ctx(20*time.Second), e.backend, group, []string{topic}, e.consumerOpts(earliestOpts(consumer.Options{})))
	require.NoError(t, err, "%s: consumer.New while the topic's metadata says LEADER_NOT_AVAILABLE for 1.5s (20s deadline)", e.rule)
	t.Cleanup(func() { _ = c.Close() })
	assert.Positive(t, hits.Load(), "%s: the injected metadata faults were served", e.rule)
	s := newSink()
	e.run(c, s.handler)
	e.received(s, want, "records read after metadata faults at New")

	// Not retryable: TOPIC_AUTHORIZATION_FAILED fails New at once, as
	// PermissionDenied.
	stop, _ = injectMetadataFaults(t, e, fake, topic, kerr.TopicAuthorizationFailed.Code)
	defer stop()
	start := time.Now()
	_, err = consumer.New(e.ctx(20*time.Second), e.backend, e.cluster.Group(t), []string{topic}, e.consumerOpts(nil))
	requireCode(t, e, err, polykafka.PermissionDenied, "consumer.New when the topic's metadata says TOPIC_AUTHORIZATION_FAILED")
	assert.Less(t, time.Since(start), 15*time.Second, "%s: a non-retryable metadata error fails New before its deadline", e.rule)
}

// rebalanceHeartbeats answers the next n Heartbeat requests of group with
// REBALANCE_IN_PROGRESS.
func rebalanceHeartbeats(fake *kfake.Cluster, group string, n int32) *atomic.Int32 {
	var hits atomic.Int32
	fake.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.HeartbeatRequest)
		if r.Group != group || hits.Load() >= n {
			if hits.Load() < n {
				fake.KeepControl()
			}
			return nil, nil, false
		}
		fake.KeepControl()
		hits.Add(1)
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp, nil, true
	})
	return &hits
}

func testInjectedHeartbeatRebalance(t *testing.T, e *env) {
	fake := needFake(t, e)
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	s, assigned := newSink(), &assignCount{}
	// CommitManual: only the revoke commits, so a member that did not
	// commit what it processed when the heartbeat made it rejoin reads it
	// again.
	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Commit: consumer.CommitManual, Hooks: []any{assigned}}))
	done := e.run(c, s.handler)
	e.assigned(wait, topic, 2, c)
	before := e.produce(topic, "before", 10, 0, 1)
	e.received(s, before, "records before the heartbeat fault")
	n := assigned.n.Load()

	hits := rebalanceHeartbeats(fake, group, 1)
	e.eventually(wait, func() bool { return hits.Load() > 0 && assigned.n.Load() > n }, "a heartbeat answered REBALANCE_IN_PROGRESS did not make the member rejoin")
	e.assigned(wait, topic, 2, c)
	after := e.produce(topic, "after", 10, 0, 1)
	e.received(s, after, "records after the member rejoined")
	notStopped(t, e, done, "after a heartbeat answered REBALANCE_IN_PROGRESS")
	assert.Zero(t, dupCount(s), "%s: the member committed what it processed when it rejoined: nothing is read twice", e.rule)
}

// receivedOf returns the values of want that s received.
func (s *sink) receivedOf(want []string) []string {
	got := s.values()
	var out []string
	for _, v := range want {
		if got[v] {
			out = append(out, v)
		}
	}
	return out
}
