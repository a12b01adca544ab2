package drivertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

// basicWait is how long a case waits for a condition that a healthy cluster
// reaches in well under a second (and a real broker within its 3s initial
// rebalance delay).
const basicWait = 30 * time.Second

// keyFor returns a key whose murmur2 partition among n is not avoid.
func keyFor(prefix string, n, avoid int32) []byte {
	for i := 0; ; i++ {
		k := []byte(fmt.Sprintf("%s-%d", prefix, i))
		if driver.KeyPartition(k, n) != avoid {
			return k
		}
	}
}

// requireCode asserts that err has code, matches the code's sentinel and
// mentions each of contains.
func requireCode(t *testing.T, e *env, err error, code polykafka.ErrorCode, what string, contains ...string) {
	t.Helper()
	require.Error(t, err, "%s: %s must fail with %v", e.rule, what, code)
	assert.Equal(t, code, polykafka.Code(err), "%s: %s: code of %q", e.rule, what, err)
	assert.True(t, errors.Is(err, sentinelOf(code)), "%s: %s: errors.Is(%q, the %v sentinel)", e.rule, what, err, code)
	for _, s := range contains {
		assert.Contains(t, err.Error(), s, "%s: %s: the error must name %q", e.rule, what, s)
	}
}

func sentinelOf(code polykafka.ErrorCode) error {
	return map[polykafka.ErrorCode]error{
		polykafka.InvalidArgument:  polykafka.ErrInvalidArgument,
		polykafka.NotFound:         polykafka.ErrNotFound,
		polykafka.AlreadyExists:    polykafka.ErrAlreadyExists,
		polykafka.Unimplemented:    polykafka.ErrUnimplemented,
		polykafka.PermissionDenied: polykafka.ErrPermissionDenied,
		polykafka.Closed:           polykafka.ErrClosed,
		polykafka.OffsetOutOfRange: polykafka.ErrOffsetOutOfRange,
		polykafka.Rebalancing:      polykafka.ErrRebalancing,
		polykafka.Unavailable:      polykafka.ErrUnavailable,
		polykafka.Fenced:           polykafka.ErrFenced,
	}[code]
}

// send sends each record synchronously and fails the test on an error.
func sendAll(t *testing.T, e *env, p *producer.Producer, rs ...*polykafka.Record) {
	t.Helper()
	ctx := e.ctx(basicWait)
	for i, r := range rs {
		require.NoError(t, p.Send(ctx, r), "%s: Send of record %d", e.rule, i)
	}
}

// waitTotal waits until s holds at least n records.
func waitTotal(e *env, s *sink, n int) {
	e.t.Helper()
	e.eventually(basicWait, func() bool { return s.total() >= n }, "expected %d records, got %d", n, s.total())
}

// recordAt returns the record s received at tp and offset.
func (s *sink) recordAt(tp polykafka.TopicPartition, offset int64) (polykafka.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs[tp] {
		if r.Offset == offset {
			return r, true
		}
	}
	return polykafka.Record{}, false
}

func earliestOpts(o consumer.Options) *consumer.Options {
	o.Initial = discovery.Earliest
	return &o
}

func testRoundTrip(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	p := e.newProducer(nil)
	type want struct {
		key, value []byte
		headers    []polykafka.Header
	}
	wants := []want{
		{
			key:   []byte("key-1"),
			value: []byte("value-1"),
			headers: []polykafka.Header{
				{Key: "trace", Value: []byte("t-1")},
				{Key: "dup", Value: []byte("first")},
				{Key: "dup", Value: []byte("second")},
			},
		},
		{key: nil, value: []byte("value-with-nil-key")},
		{key: []byte("key-empty-value"), value: []byte{}},
	}
	recs := make([]*polykafka.Record, len(wants))
	for i, w := range wants {
		recs[i] = &polykafka.Record{Topic: topic, Key: w.key, Value: w.value, Headers: w.headers}
	}
	before := time.Now()
	sendAll(t, e, p, recs...)

	s := newSink()
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, earliestOpts(consumer.Options{}))
	e.run(c, s.handler)
	waitTotal(e, s, len(recs))
	assert.Equal(t, len(recs), s.total(), "%s: each record is delivered once", e.rule)

	for i, r := range recs {
		w := wants[i]
		assert.Equal(t, topic, r.Topic, "%s: record %d: Send keeps Topic", e.rule, i)
		got, ok := s.recordAt(r.TopicPartition(), r.Offset)
		if !assert.True(t, ok, "%s: record %d not read back at %s offset %d (where Send put it)", e.rule, i, r.TopicPartition(), r.Offset) {
			continue
		}
		assert.Equal(t, topic, got.Topic, "%s: record %d: Topic", e.rule, i)
		assert.Equal(t, r.Partition, got.Partition, "%s: record %d: Partition", e.rule, i)
		assert.Equal(t, r.Offset, got.Offset, "%s: record %d: Offset", e.rule, i)
		if w.key == nil {
			assert.Nil(t, got.Key, "%s: record %d: a nil key must come back nil", e.rule, i)
		} else {
			assert.Equal(t, w.key, got.Key, "%s: record %d: key", e.rule, i)
		}
		assert.NotNil(t, got.Value, "%s: record %d: a non-nil value must come back non-nil", e.rule, i)
		assert.Len(t, got.Value, len(w.value), "%s: record %d: value length", e.rule, i)
		assert.Equal(t, string(w.value), string(got.Value), "%s: record %d: value", e.rule, i)
		if len(w.headers) == 0 {
			assert.Empty(t, got.Headers, "%s: record %d: headers", e.rule, i)
		} else {
			assert.Equal(t, w.headers, got.Headers, "%s: record %d: headers, in order, duplicates kept", e.rule, i)
		}
		assert.False(t, got.Timestamp.IsZero(), "%s: record %d: consumed Timestamp is set", e.rule, i)
		assert.False(t, r.Timestamp.IsZero(), "%s: record %d: Send sets Timestamp", e.rule, i)
		assert.WithinDuration(t, before, got.Timestamp, time.Minute, "%s: record %d: Timestamp is the send time", e.rule, i)
	}
}

func testKeyPartition(t *testing.T, e *env) {
	const n = 7
	topic := e.cluster.Topic(t, n)
	p := e.newProducer(nil)
	ctx := e.ctx(basicWait)

	const count = 200
	recs := make([]*polykafka.Record, count)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range recs {
		recs[i] = &polykafka.Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("v-%d", i))}
		wg.Add(1)
		p.SendAsync(ctx, recs[i], func(_ *polykafka.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs, "%s: sends failed", e.rule)

	want := make(map[int32]int64)
	for i, r := range recs {
		exp := driver.KeyPartition(r.Key, n)
		want[exp]++
		assert.Equal(t, exp, r.Partition, "%s: key %q", e.rule, r.Key)
		if t.Failed() && i > 20 {
			break // enough evidence
		}
	}
	// Independently of what Send reported: the partitions hold the
	// records murmur2 predicts.
	if !t.Failed() {
		ends := e.cluster.EndOffsets(t, topic)
		for part := int32(0); part < n; part++ {
			assert.Equal(t, want[part], ends[part], "%s: records on partition %d (by end offset)", e.rule, part)
		}
	}
}

func testSendPosition(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	p := e.newProducer(nil)
	const n = 20
	recs := make([]*polykafka.Record, n)
	for i := range recs {
		recs[i] = &polykafka.Record{Topic: topic, Key: []byte(fmt.Sprintf("k-%d", i)), Value: []byte(fmt.Sprintf("v-%d", i))}
	}
	sendAll(t, e, p, recs...)
	seen := make(map[string]int)
	for i, r := range recs {
		require.GreaterOrEqual(t, r.Partition, int32(0), "%s: record %d: Send sets Partition", e.rule, i)
		require.Less(t, r.Partition, int32(3), "%s: record %d: Send sets Partition", e.rule, i)
		require.GreaterOrEqual(t, r.Offset, int64(0), "%s: record %d: Send sets Offset", e.rule, i)
		pos := fmt.Sprintf("%s@%d", r.TopicPartition(), r.Offset)
		seen[pos]++
		require.Equal(t, 1, seen[pos], "%s: two records were reported at %s", e.rule, pos)
	}

	s := newSink()
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, earliestOpts(consumer.Options{}))
	e.run(c, s.handler)
	waitTotal(e, s, n)
	assert.Equal(t, n, s.total(), "%s: consumed record count", e.rule)
	for i, r := range recs {
		got, ok := s.recordAt(r.TopicPartition(), r.Offset)
		if assert.True(t, ok, "%s: nothing read back at %s offset %d, where Send put record %d", e.rule, r.TopicPartition(), r.Offset, i) {
			assert.Equal(t, fmt.Sprintf("v-%d", i), string(got.Value), "%s: value at %s offset %d", e.rule, r.TopicPartition(), r.Offset)
			assert.Equal(t, fmt.Sprintf("k-%d", i), string(got.Key), "%s: key at %s offset %d", e.rule, r.TopicPartition(), r.Offset)
		}
	}
}

// callbacks counts the callback runs of a batch of SendAsync calls.
type callbacks struct {
	recs  []*polykafka.Record
	calls []int32
	mu    sync.Mutex
	errs  map[int]error
	wrong map[int]bool // called with another record than sent
}

func sendAsyncBatch(e *env, p *producer.Producer, ctx context.Context, topic string, prefix string, n int) *callbacks {
	cb := &callbacks{recs: make([]*polykafka.Record, n), calls: make([]int32, n), errs: make(map[int]error), wrong: make(map[int]bool)}
	for i := range n {
		r := &polykafka.Record{Topic: topic, Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte(fmt.Sprintf("%s-v-%d", prefix, i))}
		cb.recs[i] = r
		p.SendAsync(ctx, r, func(got *polykafka.Record, err error) {
			atomic.AddInt32(&cb.calls[i], 1)
			cb.mu.Lock()
			defer cb.mu.Unlock()
			if err != nil {
				cb.errs[i] = err
			}
			if got != r {
				cb.wrong[i] = true
			}
		})
	}
	return cb
}

// check asserts that every callback ran exactly once, with nil error.
func (cb *callbacks) check(t *testing.T, e *env, when string) {
	t.Helper()
	bad := 0
	for i := range cb.calls {
		if k := atomic.LoadInt32(&cb.calls[i]); k != 1 {
			bad++
			if bad <= 5 {
				assert.Equal(t, int32(1), k, "%s: %s: callback of record %d ran %d times", e.rule, when, i, k)
			}
		}
	}
	assert.Zero(t, bad, "%s: %s: callbacks that did not run exactly once", e.rule, when)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	n := 0
	for i, err := range cb.errs {
		if n++; n <= 5 {
			assert.NoError(t, err, "%s: %s: record %d failed on a healthy cluster", e.rule, when, i)
		}
	}
	assert.Empty(t, cb.wrong, "%s: %s: callbacks called with another record than sent", e.rule, when)
}

func testAsyncCallbacks(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	p := e.newProducer(nil)
	ctx := e.ctx(basicWait)

	const n = 500
	first := sendAsyncBatch(e, p, ctx, topic, "flush", n)
	require.NoError(t, p.Flush(ctx), "%s: Flush", e.rule)
	first.check(t, e, "after Flush")

	second := sendAsyncBatch(e, p, ctx, topic, "close", n)
	require.NoError(t, p.Close(), "%s: Close on a healthy cluster", e.rule)
	second.check(t, e, "after Close")
	first.check(t, e, "after Close (first batch)")
	for i, r := range second.recs {
		if !assert.GreaterOrEqual(t, r.Offset, int64(0), "%s: record %d delivered by Close has an offset", e.rule, i) {
			break
		}
	}

	var calls atomic.Int32
	var mu sync.Mutex
	var gotErr error
	p.SendAsync(ctx, &polykafka.Record{Topic: topic, Value: []byte("late")}, func(_ *polykafka.Record, err error) {
		calls.Add(1)
		mu.Lock()
		gotErr = err
		mu.Unlock()
	})
	require.Equal(t, int32(1), calls.Load(), "%s: the callback of SendAsync after Close runs once, before SendAsync returns", e.rule)
	mu.Lock()
	defer mu.Unlock()
	requireCode(t, e, gotErr, polykafka.Closed, "SendAsync after Close")
	assert.True(t, errors.Is(gotErr, polykafka.ErrClosed), "%s: errors.Is(err, ErrClosed)", e.rule)

	// Everything was delivered, and only once: the end offsets add up.
	var total int64
	for _, o := range e.cluster.EndOffsets(t, topic) {
		total += o
	}
	assert.Equal(t, int64(2*n), total, "%s: records written (sum of end offsets)", e.rule)
}

func testRecordPartition(t *testing.T, e *env) {
	const n = 4
	topic := e.cluster.Topic(t, n)
	ctx := e.ctx(basicWait)
	want := make(map[int32]int64)

	p := e.newProducer(&producer.Options{RecordPartition: true})
	own := &polykafka.Record{Topic: topic, Partition: 2, Key: keyFor("own", n, 2), Value: []byte("own")}
	require.NoError(t, p.Send(ctx, own), "%s: Send with Partition 2", e.rule)
	assert.Equal(t, int32(2), own.Partition, "%s: a record with Partition 2 lands on 2, whatever its key", e.rule)
	want[2]++

	anyKey := []byte("any-partition-key")
	anyRec := &polykafka.Record{Topic: topic, Partition: polykafka.AnyPartition, Key: anyKey, Value: []byte("any")}
	require.NoError(t, p.Send(ctx, anyRec), "%s: Send with AnyPartition", e.rule)
	assert.Equal(t, driver.KeyPartition(anyKey, n), anyRec.Partition, "%s: AnyPartition uses murmur2 of the key", e.rule)
	want[driver.KeyPartition(anyKey, n)]++

	bad := &polykafka.Record{Topic: topic, Partition: 9, Key: []byte("k"), Value: []byte("bad")}
	requireCode(t, e, p.Send(ctx, bad), polykafka.InvalidArgument, "Send with Partition 9 of 4")
	neg := &polykafka.Record{Topic: topic, Partition: -5, Value: []byte("neg")}
	requireCode(t, e, p.Send(ctx, neg), polykafka.InvalidArgument, "Send with Partition -5")

	// The producer still works after a rejected record.
	after := &polykafka.Record{Topic: topic, Partition: 1, Value: []byte("after")}
	require.NoError(t, p.Send(ctx, after), "%s: Send after an invalid partition", e.rule)
	assert.Equal(t, int32(1), after.Partition, "%s: a record with Partition 1 lands on 1", e.rule)
	want[1]++

	def := e.newProducer(nil)
	key := keyFor("default", n, 3)
	ignored := &polykafka.Record{Topic: topic, Partition: 3, Key: key, Value: []byte("ignored")}
	require.NoError(t, def.Send(ctx, ignored), "%s: Send with Partition 3 and RecordPartition off", e.rule)
	assert.Equal(t, driver.KeyPartition(key, n), ignored.Partition, "%s: without RecordPartition, Partition is ignored and the key decides", e.rule)
	want[driver.KeyPartition(key, n)]++

	ends := e.cluster.EndOffsets(t, topic)
	for part := int32(0); part < n; part++ {
		assert.Equal(t, want[part], ends[part], "%s: records on partition %d (by end offset)", e.rule, part)
	}
}

func testMissingTopic(t *testing.T, e *env) {
	name := testcluster.Name(t, "missing")
	group := e.cluster.Group(t)
	var c *consumer.Consumer
	var err error
	require.NotPanics(t, func() {
		c, err = consumer.New(e.ctx(basicWait), e.backend, group, []string{name}, e.consumerOpts(nil))
	}, e.rule)
	if c != nil {
		_ = c.Close()
	}
	assert.Nil(t, c, "%s: New returns no consumer on error", e.rule)
	requireCode(t, e, err, polykafka.NotFound, "New on a missing topic", name)
	assert.True(t, errors.Is(err, polykafka.ErrNotFound), "%s: errors.Is(err, ErrNotFound)", e.rule)
	// A KIP-848 member may have joined before the topic was found missing.
	e.eventually(basicWait, func() bool { return e.members(group) == 0 }, "a New that failed left a member in group %s", group)

	// A missing topic among existing ones is found too.
	topic := e.cluster.Topic(t, 1)
	group2 := e.cluster.Group(t)
	c, err = consumer.New(e.ctx(basicWait), e.backend, group2, []string{topic, name}, e.consumerOpts(nil))
	if c != nil {
		_ = c.Close()
	}
	requireCode(t, e, err, polykafka.NotFound, "New on an existing and a missing topic", name)
	e.eventually(basicWait, func() bool { return e.members(group2) == 0 }, "a New that failed left a member in group %s", group2)
}

// members returns the number of members of group, under the run's group
// protocol (0 if the group does not exist).
func (e *env) members(group string) int {
	e.t.Helper()
	n, err := e.membersIn(e.cluster, group)
	require.NoError(e.t, err, "describing group %s", group)
	return n
}

// stableWith reports whether group on cl is stable (classic protocol) with
// n members; a describe that fails counts as not.
func (e *env) stableWith(cl *testcluster.Cluster, group string, n int) bool {
	if e.h.GroupProtocol == consumer.GroupProtocolConsumer {
		m, err := e.membersIn(cl, group)
		return err == nil && m == n
	}
	gs, err := cl.Admin().DescribeGroups(e.ctx(basicWait), group)
	if err != nil {
		return false
	}
	g, ok := gs[group]
	return ok && g.Err == nil && g.State == "Stable" && len(g.Members) == n
}

// membersIn is members on cl (a cluster other than the env's, such as a
// cuttable one), with the describe's error (-1 members then).
func (e *env) membersIn(cl *testcluster.Cluster, group string) (int, error) {
	ctx := e.ctx(basicWait)
	adm := cl.Admin()
	if e.h.GroupProtocol == consumer.GroupProtocolConsumer {
		gs, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return -1, err
		}
		g, ok := gs[group]
		if !ok || g.Err != nil {
			return 0, nil
		}
		return len(g.Members), nil
	}
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return -1, err
	}
	g, ok := gs[group]
	if !ok || g.Err != nil {
		return 0, nil
	}
	return len(g.Members), nil
}

func testUseAfterClose(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	ctx := e.ctx(basicWait)

	c := e.newConsumer(e.cluster.Group(t), []string{topic}, earliestOpts(consumer.Options{}))
	first := c.Close()
	require.NoError(t, first, "%s: consumer Close", e.rule)
	assert.Equal(t, first, c.Close(), "%s: a second consumer Close returns the first's result", e.rule)

	handler := func(context.Context, polykafka.Record) error { return nil }
	requireCode(t, e, c.Run(ctx, handler), polykafka.Closed, "consumer Run after Close")
	requireCode(t, e, c.RunBatch(ctx, func(context.Context, []polykafka.Record) error { return nil }), polykafka.Closed, "consumer RunBatch after Close")
	recs, err := c.Poll(ctx)
	assert.Empty(t, recs, "%s: Poll after Close returns no records", e.rule)
	requireCode(t, e, err, polykafka.Closed, "consumer Poll after Close")
	requireCode(t, e, c.Commit(ctx), polykafka.Closed, "consumer Commit after Close")
	requireCode(t, e, c.Pause(ctx, tp), polykafka.Closed, "consumer Pause after Close")
	requireCode(t, e, c.Resume(ctx, tp), polykafka.Closed, "consumer Resume after Close")

	p := e.newProducer(nil)
	pfirst := p.Close()
	require.NoError(t, pfirst, "%s: producer Close", e.rule)
	assert.Equal(t, pfirst, p.Close(), "%s: a second producer Close returns the first's result", e.rule)
	requireCode(t, e, p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte("late")}), polykafka.Closed, "producer Send after Close")
	requireCode(t, e, p.Flush(ctx), polykafka.Closed, "producer Flush after Close")
	assert.Equal(t, int64(0), e.cluster.EndOffsets(t, topic)[0], "%s: nothing was written after Close", e.rule)
}

func testInvalidOptions(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	group := e.cluster.Group(t)
	ctx := e.ctx(basicWait)

	consumerCases := []struct {
		name   string
		nilB   bool
		group  string
		topics []string
		opts   *consumer.Options
		field  string
	}{
		{name: "nil backend", nilB: true, group: group, topics: []string{topic}, field: "backend"},
		{name: "empty group", group: "", topics: []string{topic}, field: "group"},
		{name: "no topics", group: group, topics: nil, field: "topics"},
		{name: "empty topic name", group: group, topics: []string{""}, field: "topics[0]"},
		{name: "duplicate topic", group: group, topics: []string{topic, topic}, field: "topics[1]"},
		{name: "negative CommitInterval", group: group, topics: []string{topic}, opts: &consumer.Options{CommitInterval: -1}, field: "Options.CommitInterval"},
		{name: "negative MaxPollRecords", group: group, topics: []string{topic}, opts: &consumer.Options{MaxPollRecords: -1}, field: "Options.MaxPollRecords"},
		{name: "negative CloseTimeout", group: group, topics: []string{topic}, opts: &consumer.Options{CloseTimeout: -1}, field: "Options.CloseTimeout"},
		{name: "time policy without time", group: group, topics: []string{topic}, opts: &consumer.Options{Initial: discovery.Policy{Kind: discovery.PolicyTime}}, field: "Options.Initial"},
		{name: "unknown NewPartitions kind", group: group, topics: []string{topic}, opts: &consumer.Options{NewPartitions: discovery.Policy{Kind: 99}}, field: "Options.NewPartitions"},
		{name: "unknown commit mode", group: group, topics: []string{topic}, opts: &consumer.Options{Commit: 7}, field: "Options.Commit"},
		{name: "unknown group protocol", group: group, topics: []string{topic}, opts: &consumer.Options{GroupProtocol: 7}, field: "Options.GroupProtocol"},
		{name: "non-hook", group: group, topics: []string{topic}, opts: &consumer.Options{Hooks: []any{42}}, field: "Options.Hooks[0]"},
		{name: "negative Concurrency", group: group, topics: []string{topic}, opts: &consumer.Options{Concurrency: -1}, field: "Options.Concurrency"},
		{name: "unknown Ordering", group: group, topics: []string{topic}, opts: &consumer.Options{Concurrency: 2, Ordering: 9}, field: "Options.Ordering"},
		{name: "negative MaxBufferedRecords", group: group, topics: []string{topic}, opts: &consumer.Options{MaxBufferedRecords: -1}, field: "Options.MaxBufferedRecords"},
		{name: "DeadLetter without producer", group: group, topics: []string{topic}, opts: &consumer.Options{OnError: consumer.ErrorPolicy{DeadLetter: &consumer.DeadLetter{}}}, field: "Options.OnError.DeadLetter.Producer"},
		{name: "MaxBackoff below Backoff", group: group, topics: []string{topic}, opts: &consumer.Options{OnError: consumer.ErrorPolicy{Retry: true, Backoff: time.Second, MaxBackoff: 500 * time.Millisecond}}, field: "Options.OnError.MaxBackoff"},
	}
	for _, tc := range consumerCases {
		b := e.backend
		if tc.nilB {
			b = nil
		}
		var c *consumer.Consumer
		var err error
		require.NotPanics(t, func() { c, err = consumer.New(ctx, b, tc.group, tc.topics, tc.opts) }, "%s: consumer.New with %s", e.rule, tc.name)
		if c != nil {
			_ = c.Close()
		}
		assert.Nil(t, c, "%s: consumer.New with %s returns no consumer", e.rule, tc.name)
		requireCode(t, e, err, polykafka.InvalidArgument, "consumer.New with "+tc.name, tc.field)
	}
	r, err := consumer.NewReader(ctx, e.backend, group, []string{topic},
		&consumer.Options{Store: offsetstore.NewMemory(), GroupProtocol: consumer.GroupProtocolConsumer})
	if r != nil {
		_ = r.Close()
	}
	requireCode(t, e, err, polykafka.InvalidArgument, "consumer.NewReader with a group protocol (a reader has no group)", "Options.GroupProtocol")

	producerCases := []struct {
		name  string
		nilB  bool
		opts  *producer.Options
		field string
	}{
		{name: "nil backend", nilB: true, field: "backend"},
		{name: "unknown compression", opts: &producer.Options{Compression: "brotli"}, field: "Options.Compression"},
		{name: "unknown acks", opts: &producer.Options{Acks: 9}, field: "Options.Acks"},
		{name: "negative Linger", opts: &producer.Options{Linger: -1}, field: "Options.Linger"},
		{name: "negative BatchBytes", opts: &producer.Options{BatchBytes: -1}, field: "Options.BatchBytes"},
		{name: "negative CloseTimeout", opts: &producer.Options{CloseTimeout: -1}, field: "Options.CloseTimeout"},
		{name: "negative DeliveryTimeout", opts: &producer.Options{DeliveryTimeout: -1}, field: "Options.DeliveryTimeout"},
		{name: "DeliveryTimeout not above Linger", opts: &producer.Options{Linger: time.Second, DeliveryTimeout: time.Second}, field: "Options.DeliveryTimeout"},
		{name: "unknown Idempotence", opts: &producer.Options{Idempotence: 9}, field: "Options.Idempotence"},
		{name: "IdempotenceRequired with AcksLeader", opts: &producer.Options{Idempotence: producer.IdempotenceRequired, Acks: producer.AcksLeader}, field: "Options.Idempotence"},
		{name: "TransactionalID with AcksLeader", opts: &producer.Options{TransactionalID: "tx", Acks: producer.AcksLeader}, field: "Options.TransactionalID"},
		{name: "non-hook", opts: &producer.Options{Hooks: []any{42}}, field: "Options.Hooks[0]"},
	}
	for _, tc := range producerCases {
		b := e.backend
		if tc.nilB {
			b = nil
		}
		var p *producer.Producer
		var err error
		require.NotPanics(t, func() { p, err = producer.New(ctx, b, tc.opts) }, "%s: producer.New with %s", e.rule, tc.name)
		if p != nil {
			_ = p.Close()
		}
		assert.Nil(t, p, "%s: producer.New with %s returns no producer", e.rule, tc.name)
		requireCode(t, e, err, polykafka.InvalidArgument, "producer.New with "+tc.name, tc.field)
	}

	p := e.newProducer(nil)
	requireCode(t, e, p.Send(ctx, nil), polykafka.InvalidArgument, "Send of a nil record", "record")
	requireCode(t, e, p.Send(ctx, &polykafka.Record{Value: []byte("v")}), polykafka.InvalidArgument, "Send of a record without Topic", "Topic")
	var calls atomic.Int32
	var asyncErr error
	p.SendAsync(ctx, nil, func(_ *polykafka.Record, err error) { calls.Add(1); asyncErr = err })
	require.Equal(t, int32(1), calls.Load(), "%s: SendAsync of a nil record calls back once, before returning", e.rule)
	requireCode(t, e, asyncErr, polykafka.InvalidArgument, "SendAsync of a nil record", "record")

	c := e.newConsumer(group, []string{topic}, nil)
	requireCode(t, e, c.Run(ctx, nil), polykafka.InvalidArgument, "Run with a nil handler", "handler")
	requireCode(t, e, c.RunBatch(ctx, nil), polykafka.InvalidArgument, "RunBatch with a nil handler", "handler")
}

func testAs(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, nil)
	p := e.newProducer(nil)
	if e.h.CheckAs != nil {
		e.h.CheckAs(t, c, p)
	}
	assert.False(t, c.As(nil), "%s: consumer As(nil)", e.rule)
	assert.False(t, p.As(nil), "%s: producer As(nil)", e.rule)
	assert.False(t, c.As(new(int)), "%s: consumer As(*int)", e.rule)
	assert.False(t, p.As(new(int)), "%s: producer As(*int)", e.rule)
	assert.False(t, c.As(42), "%s: consumer As(non-pointer)", e.rule)
	assert.False(t, p.As(42), "%s: producer As(non-pointer)", e.rule)

	var r polykafka.Record
	assert.False(t, r.As(new(int)), "%s: Record.As without a native record", e.rule)
	r.Native = "native"
	assert.False(t, r.As(nil), "%s: Record.As(nil)", e.rule)
	assert.False(t, r.As(new(int)), "%s: Record.As to an unassignable type", e.rule)
	var s string
	assert.True(t, r.As(&s), "%s: Record.As to the native type", e.rule)
	assert.Equal(t, "native", s, "%s: Record.As sets the target", e.rule)
}

func testPollManual(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	group := e.cluster.Group(t)
	const n = 10
	krs := make([]*kgo.Record, n)
	for i := range krs {
		krs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("v-%d", i))}
	}
	e.cluster.Produce(t, krs...)

	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Commit: consumer.CommitManual}))
	ctx := e.ctx(basicWait)
	var got []*polykafka.Record
	deadline := time.Now().Add(basicWait)
	for len(got) < n {
		require.True(t, time.Now().Before(deadline), "%s: Poll returned %d of %d records within %v", e.rule, len(got), n, basicWait)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		rs, err := c.Poll(pctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		require.NoError(t, err, "%s: Poll", e.rule)
		got = append(got, rs...)
	}
	require.Len(t, got, n, "%s: Poll returned more records than produced", e.rule)
	for i, r := range got {
		require.Equal(t, int64(i), r.Offset, "%s: Poll returns the partition's records in order", e.rule)
		require.Equal(t, fmt.Sprintf("v-%d", i), string(r.Value), "%s: value at offset %d", e.rule, i)
	}

	c.Mark(got[:4]...)
	committed := e.positions(t, group, topic)
	require.Contains(t, committed, int32(0), "%s: the start decision (earliest: offset 0) is committed before any record is handed out", e.rule)
	assert.Equal(t, int64(0), committed[0].Offset, "%s: before Commit only the start decision (offset 0) may be committed", e.rule)
	require.NoError(t, c.Commit(ctx), "%s: Commit", e.rule)
	committed = e.positions(t, group, topic)
	require.Contains(t, committed, int32(0), "%s: Commit stored partition 0", e.rule)
	assert.Equal(t, int64(4), committed[0].Offset, "%s: Commit stores the offset after the last marked record", e.rule)

	require.NoError(t, c.Close(), "%s: Close", e.rule)
	assert.Equal(t, int64(4), e.positions(t, group, topic)[0].Offset, "%s: Close commits only marked records", e.rule)

	s := newSink()
	c2 := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{}))
	e.run(c2, s.handler)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.eventually(basicWait, func() bool { return len(s.offsets(tp)) >= n-4 }, "the restarted group read %d of %d records", len(s.offsets(tp)), n-4)
	assert.Equal(t, []int64{4, 5, 6, 7, 8, 9}, s.offsets(tp), "%s: the next member resumes at the first unmarked record", e.rule)
}

func testPauseResume(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	p0 := polykafka.TopicPartition{Topic: topic, Partition: 0}
	p1 := polykafka.TopicPartition{Topic: topic, Partition: 1}
	ctx := e.ctx(basicWait)

	s := newSink()
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, earliestOpts(consumer.Options{}))
	e.run(c, s.handler)
	e.assigned(basicWait, topic, 2, c)

	err := c.Pause(ctx, p0)
	if polykafka.Code(err) == polykafka.Unimplemented {
		requireCode(t, e, err, polykafka.Unimplemented, "Pause on a backend that cannot pause")
		requireCode(t, e, c.Resume(ctx, p0), polykafka.Unimplemented, "Resume on a backend that cannot pause")
		return
	}
	require.NoError(t, err, "%s: Pause", e.rule)

	produce := func(part int32, prefix string, k int) {
		rs := make([]*kgo.Record, k)
		for i := range rs {
			rs[i] = &kgo.Record{Topic: topic, Partition: part, Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
		}
		e.cluster.Produce(t, rs...)
	}
	// p0 first, so that an unpaused p0 would be read before p1.
	produce(0, "p0", 5)
	produce(1, "p1a", 5)
	e.eventually(basicWait, func() bool { return len(s.offsets(p1)) >= 5 }, "the unpaused partition delivered %d of 5 records", len(s.offsets(p1)))
	// A second round on p1 gives a broken pause more fetches to show itself.
	produce(1, "p1b", 5)
	e.eventually(basicWait, func() bool { return len(s.offsets(p1)) >= 10 }, "the unpaused partition delivered %d of 10 records", len(s.offsets(p1)))
	assert.Empty(t, s.offsets(p0), "%s: the paused partition delivered records", e.rule)
	assert.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, s.offsets(p1), "%s: the unpaused partition delivers in order", e.rule)

	require.NoError(t, c.Resume(ctx, p0), "%s: Resume", e.rule)
	e.eventually(basicWait, func() bool { return len(s.offsets(p0)) >= 5 }, "the resumed partition delivered %d of 5 records", len(s.offsets(p0)))
	assert.Equal(t, []int64{0, 1, 2, 3, 4}, s.offsets(p0), "%s: the resumed partition delivers what it held back, once, in order", e.rule)
}
