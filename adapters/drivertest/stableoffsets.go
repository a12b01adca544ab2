package drivertest

// A transaction's offset commit is pending from the moment the broker
// answers EndTxn until its markers are written; until then a plain
// OffsetFetch returns the group's previous commit. A read-committed member
// that starts in that window must ask for stable offsets (KIP-447
// require_stable) and wait out UNSTABLE_OFFSET_COMMIT, or it re-reads
// what the transaction consumed.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/producer"
)

// pendingTxnOffsets makes the in-process cluster answer group's offset
// fetches as a real broker does while a transaction's offset commit is
// pending: a fetch that requires stable offsets gets UNSTABLE_OFFSET_COMMIT,
// any other gets the commits of before the transaction (stale). The markers
// count as written once at least a second has passed since the group's
// first offset fetch and two stable fetches were answered unstable; from
// then on every fetch is answered normally. On an external cluster it does
// nothing: the broker's own window applies.
type pendingTxnOffsets struct {
	unstableAnswers, staleAnswers atomic.Int32
}

func holdTxnOffsets(e *env, group, topic string, stale map[int32]kadm.OffsetResponse) *pendingTxnOffsets {
	fake := e.cluster.Fake()
	h := &pendingTxnOffsets{}
	if fake == nil {
		return h
	}
	var (
		mu       sync.Mutex
		first    time.Time
		released bool
	)
	pendingNow := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first = time.Now()
		}
		if !released && time.Since(first) >= time.Second && h.unstableAnswers.Load() >= 2 {
			released = true
		}
		return !released
	}
	fake.ControlKey(int16(kmsg.OffsetFetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		r := req.(*kmsg.OffsetFetchRequest)
		g, reqTopics := r.Group, r.Topics
		if len(r.Groups) == 1 {
			g, reqTopics = r.Groups[0].Group, nil
			for _, t := range r.Groups[0].Topics {
				reqTopics = append(reqTopics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		if g != group || !pendingNow() {
			return nil, nil, false
		}
		if r.RequireStable {
			h.unstableAnswers.Add(1)
			return offsetFetchAnswer(r, group, topic, reqTopics, stale, kerr.UnstableOffsetCommit.Code), nil, true
		}
		h.staleAnswers.Add(1)
		return offsetFetchAnswer(r, group, topic, reqTopics, stale, 0), nil, true
	})
	return h
}

// offsetFetchAnswer answers r for topic's partitions with offsets (or code
// on every partition), in the layout of r's version.
func offsetFetchAnswer(r *kmsg.OffsetFetchRequest, group, topic string, reqTopics []kmsg.OffsetFetchRequestTopic, offsets map[int32]kadm.OffsetResponse, code int16) kmsg.Response {
	parts := make([]int32, 0, len(offsets))
	for p := range offsets {
		parts = append(parts, p)
	}
	for _, t := range reqTopics {
		if t.Topic == topic {
			parts = t.Partitions
		}
	}
	var topicID [16]byte // v10+ names topics by id
	for _, o := range offsets {
		topicID = o.TopicID
	}
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	var rt kmsg.OffsetFetchResponseTopic
	rt.Topic = topic
	var gt kmsg.OffsetFetchResponseGroupTopic
	gt.Topic, gt.TopicID = topic, topicID
	for _, p := range parts {
		o, ok := offsets[p]
		at, meta, epoch := int64(-1), "", int32(-1)
		if ok {
			at, meta, epoch = o.At, o.Metadata, o.LeaderEpoch
		}
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata, rp.LeaderEpoch, rp.ErrorCode = p, at, &meta, epoch, code
		rt.Partitions = append(rt.Partitions, rp)
		gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		gp.Partition, gp.Offset, gp.Metadata, gp.LeaderEpoch, gp.ErrorCode = p, at, &meta, epoch, code
		gt.Partitions = append(gt.Partitions, gp)
	}
	if r.Version >= 8 {
		g := kmsg.NewOffsetFetchResponseGroup()
		g.Group = group
		g.Topics = []kmsg.OffsetFetchResponseGroupTopic{gt}
		resp.Groups = []kmsg.OffsetFetchResponseGroup{g}
	} else {
		resp.Topics = []kmsg.OffsetFetchResponseTopic{rt}
	}
	return resp
}

func testStartAtTransactionCommit(t *testing.T, e *env) {
	if !e.h.Transactions {
		t.Skip("the backend has no transactional producer (the Transactions case checks that it fails with Unimplemented)")
	}
	if !e.h.StableOffsets {
		t.Skip("the harness declares no stable offset fetch (Harness.StableOffsets): a read-committed member of this backend may start below a pending transaction's commit; see the README's capability matrix")
	}
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	consumed := e.produce(topic, "consumed", 10, 0, 1)
	ctx := e.ctx(wait)

	// A consume-transform-produce member reads everything and commits its
	// offsets with a transaction, then leaves.
	p := e.newProducer(&producer.Options{TransactionalID: "tx-" + group})
	a := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, ReadCommitted: true, Commit: consumer.CommitTransactional})
	for polled := 0; polled < len(consumed); {
		rs, err := a.Poll(ctx)
		require.NoError(t, err)
		a.Mark(rs...)
		polled += len(rs)
	}
	before := e.cluster.Committed(t, group, topic)
	require.NoError(t, p.BeginTransaction(ctx))
	require.NoError(t, p.SendOffsets(ctx, a), "%s: SendOffsets", e.rule)
	require.NoError(t, p.CommitTransaction(ctx), "%s: CommitTransaction", e.rule)
	require.NoError(t, a.Close(), "closing the transactional member")

	// The next member starts the moment the transaction commits, while
	// its markers are not written yet.
	pending := holdTxnOffsets(e, group, topic, before)
	s := newSink()
	b := e.newConsumer(group, []string{topic}, &consumer.Options{Initial: discovery.Earliest, ReadCommitted: true})
	e.run(b, s.handler)
	e.assigned(wait, topic, 2, b)
	fresh := e.produce(topic, "fresh", 6, 0, 1)
	e.received(s, fresh, "records produced after the transaction")
	e.noneOf(s, consumed, fmt.Sprintf("the records the transaction consumed were read again (the member started from the commit of before the transaction; %d stale and %d unstable offset answers)",
		pending.staleAnswers.Load(), pending.unstableAnswers.Load()))
	t.Logf("offset fetches answered while the commit was pending: %d stale, %d unstable", pending.staleAnswers.Load(), pending.unstableAnswers.Load())
	if e.cluster.Fake() != nil {
		assert.Positive(t, pending.unstableAnswers.Load(), "%s: the member asked for stable offsets (require_stable) and waited for them", e.rule)
	}
}
