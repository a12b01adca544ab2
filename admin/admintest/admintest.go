// Package admintest is the conformance suite of the admin reset (package
// admin) that every adapter implementing driver.Administrator runs, through
// the portable API, against an in-process kfake cluster or the cluster in
// KAFKA_BROKERS:
//
//	func TestAdmin(t *testing.T) {
//		admintest.Run(t, admintest.Harness{NewBackend: newBackend})
//	}
//
// The group's starting positions are written, and the results read, with a
// plain franz-go client, independently of the backend under test. Each case
// fails with the rule it enforces.
package admintest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/admin"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
)

// Harness describes the adapter under test.
type Harness struct {
	// NewBackend returns a backend on brokers; it should shorten the
	// heartbeat interval (about 250ms) as for drivertest. The backend must
	// implement driver.Administrator.
	NewBackend func(t *testing.T, brokers []string) driver.Backend
}

type testCase struct {
	name string
	rule string
	run  func(t *testing.T, e *env)
}

func cases() []testCase {
	return []testCase{
		{"DryRunChangesNothing", "Plan prints every partition in scope with its current and new offset and commits nothing", testDryRun},
		{"ApplyMovesPositionsKeepsMetadata", "Apply commits the planned offsets and keeps each position's metadata (the baseline) verbatim; partitions out of scope keep their position", testApply},
		{"RefusedWhileGroupActive", "Plan and Apply refuse with FailedPrecondition, naming the group and its member count, while the group has an active member (Apply checks again right before committing), and succeed once it left", testRefusal},
		{"TimestampTarget", "a time target moves to the first record at or after it, and to the log end when there is none", testTime},
		{"OffsetTargetClamped", "an explicit offset is used as it is inside the log and clamped to the log start or end outside it", testOffset},
		{"NoPositionScopeAfterGrowth", "with no chosen partitions, the reset covers exactly the partitions without a position, and records the group's baseline with them", testNoPositionScope},
		{"NeverReadTopicRecordsPartitionCount", "a topic the group never read gets the topic's partition count as its baseline, as a consumer would record", testNeverRead},
		{"GuaranteeSurvivesReset", "after a reset, a consumer still starts an old partition at its (reset) commit and a later-added partition as new-partition, from earliest", testGuarantee},
		{"MissingTopicIsNotFound", "a reset of a missing topic fails with NotFound", testMissingTopic},
		{"LagDescribesEveryPartition", "Lag reports every partition's committed offset, log end and lag; a partition without a usable position is counted from where the decision table would start it, and flagged", testLag},
		{"NoAdministratorIsUnimplemented", "a backend without driver.Administrator fails with Unimplemented", testUnimplemented},
	}
}

// Run runs the suite, one subtest per behaviour.
func Run(t *testing.T, h Harness) {
	require.NotNil(t, h.NewBackend, "Harness.NewBackend is required")
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := testcluster.New(t)
			b := h.NewBackend(t, cl.Brokers())
			_, ok := b.(driver.Administrator)
			require.True(t, ok, "the backend under test must implement driver.Administrator")
			tc.run(t, &env{t: t, rule: tc.rule, cluster: cl, backend: b})
		})
	}
}

type env struct {
	t       *testing.T
	rule    string
	cluster *testcluster.Cluster
	backend driver.Backend
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// fill writes n records to each of partitions of topic.
func (e *env) fill(topic string, partitions []int32, n int) {
	e.t.Helper()
	var rs []*kgo.Record
	for _, p := range partitions {
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strconv.Itoa(i))})
		}
	}
	e.cluster.Produce(e.t, rs...)
}

// seed commits positions for group as an inactive group would have them,
// each with metadata.
func (e *env) seed(group, topic string, offsets map[int32]int64, metadata map[int32]string) {
	e.t.Helper()
	var os kadm.Offsets
	for p, o := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1, Metadata: metadata[p]})
	}
	resp, err := e.cluster.Admin().CommitOffsets(e.ctx(), group, os)
	if err == nil {
		err = resp.Error()
	}
	require.NoError(e.t, err, "seeding the group's commits")
}

// baselineMeta returns metadata recording baseline for each partition.
func baselineMeta(baseline int32, partitions ...int32) map[int32]string {
	m := make(map[int32]string)
	for _, p := range partitions {
		m[p] = offsetstore.EncodeMetadata(baseline)
	}
	return m
}

type commit struct {
	Offset   int64
	Metadata string
}

func (e *env) committed(group, topic string) map[int32]commit {
	e.t.Helper()
	out := make(map[int32]commit)
	for p, r := range e.cluster.Committed(e.t, group, topic) {
		out[p] = commit{r.At, r.Metadata}
	}
	return out
}

func tp(topic string, p int32) polykafka.TopicPartition {
	return polykafka.TopicPartition{Topic: topic, Partition: p}
}

func (e *env) plan(group string, topics []string, target admin.Target, o *admin.PlanOptions) *admin.ResetPlan {
	e.t.Helper()
	p, err := admin.Plan(e.ctx(), e.backend, group, topics, target, o)
	require.NoError(e.t, err, "Plan: %s", e.rule)
	return p
}

func rowsByPartition(p *admin.ResetPlan) map[int32]admin.Row {
	out := make(map[int32]admin.Row)
	for _, r := range p.Rows {
		out[r.Partition] = r
	}
	return out
}

func testDryRun(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1, 2}, 10)
	e.seed(group, topic, map[int32]int64{0: 4, 1: 10}, baselineMeta(3, 0, 1))
	before := e.committed(group, topic)

	p := e.plan(group, []string{topic}, admin.Earliest(), &admin.PlanOptions{All: true})
	table := p.String()
	t.Log("\n" + table)
	require.Len(t, p.Rows, 3, e.rule)
	rows := rowsByPartition(p)
	assert.Equal(t, int64(4), rows[0].Current, e.rule)
	assert.Equal(t, int64(-1), rows[2].Current, "partition 2 has no position: %s", e.rule)
	for part, r := range rows {
		assert.Equal(t, int64(0), r.New, "partition %d: earliest is 0: %s", part, e.rule)
		assert.Equal(t, int64(10), r.LogEnd, "partition %d", part)
	}
	d, ok := rows[1].LagChange()
	assert.True(t, ok)
	assert.Equal(t, int64(10), d, "partition 1 moves back from 10 to 0: 10 more records to read")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	require.Len(t, lines, 5, "a title, a header and one line per partition: %s", e.rule)
	assert.Contains(t, lines[0], group)
	assert.Regexp(t, `^\S+\s+1\s+10\s+0\s+0-10\s+0 -> 10\s+\+10\s+kept\s+earliest$`, lines[3], "the line of partition 1")
	assert.Regexp(t, `^\S+\s+2\s+-\s+0\s+0-10\s+- -> 10\s+-\s+baseline=3 \(group\)\s+earliest$`, lines[4], "the line of partition 2")
	assert.Equal(t, before, e.committed(group, topic), "a plan that is not applied changes nothing: %s", e.rule)
}

func testApply(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1, 2}, 10)
	meta := baselineMeta(3, 0, 2)
	meta[1] = "written by another tool"
	e.seed(group, topic, map[int32]int64{0: 2, 1: 3, 2: 4}, meta)

	p := e.plan(group, []string{topic}, admin.Latest(), &admin.PlanOptions{Partitions: []polykafka.TopicPartition{tp(topic, 0), tp(topic, 1)}})
	require.Len(t, p.Rows, 2)
	require.NoError(t, p.Apply(e.ctx()), "Apply: %s", e.rule)
	got := e.committed(group, topic)
	assert.Equal(t, commit{10, offsetstore.EncodeMetadata(3)}, got[0], "partition 0 moves to latest and keeps its baseline: %s", e.rule)
	assert.Equal(t, commit{10, "written by another tool"}, got[1], "partition 1 keeps its metadata verbatim: %s", e.rule)
	assert.Equal(t, commit{4, offsetstore.EncodeMetadata(3)}, got[2], "partition 2 is out of scope: %s", e.rule)
}

func testRefusal(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1}, 5)
	// A plan made while the group is inactive, applied after a member
	// joined: Apply checks again.
	early := e.plan(group, []string{topic}, admin.Earliest(), &admin.PlanOptions{All: true})

	c, err := consumer.New(e.ctx(), e.backend, group, []string{topic}, &consumer.Options{DiscoveryInterval: -1})
	require.NoError(t, err, "consumer.New")
	closed := false
	defer func() {
		if !closed {
			_ = c.Close()
		}
	}()
	_, err = c.AwaitAssignment(e.ctx())
	require.NoError(t, err, "the consumer must join")

	checkRefused := func(what string, err error) {
		t.Helper()
		require.Error(t, err, "%s while a consumer runs: %s", what, e.rule)
		assert.Equal(t, polykafka.FailedPrecondition, polykafka.Code(err), "%s: %v: %s", what, err, e.rule)
		assert.True(t, errors.Is(err, polykafka.ErrFailedPrecondition))
		assert.Contains(t, err.Error(), strconv.Quote(group), "%s: the error names the group", what)
		assert.Contains(t, err.Error(), "1 active member", "%s: the error gives the member count", what)
	}
	_, err = admin.Plan(e.ctx(), e.backend, group, []string{topic}, admin.Earliest(), nil)
	checkRefused("Plan", err)
	checkRefused("Apply", early.Apply(e.ctx()))
	before := e.committed(group, topic)

	require.NoError(t, c.Close(), "consumer Close")
	closed = true
	// The group is empty once the member's leave is processed.
	deadline := time.Now().Add(30 * time.Second)
	var p *admin.ResetPlan
	for {
		p, err = admin.Plan(e.ctx(), e.backend, group, []string{topic}, admin.Earliest(), &admin.PlanOptions{All: true})
		if polykafka.Code(err) != polykafka.FailedPrecondition || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err, "Plan after the consumer closed: %s", e.rule)
	assert.Equal(t, before, e.committed(group, topic), "the refused Apply committed nothing")
	require.NoError(t, p.Apply(e.ctx()), "Apply after the consumer closed: %s", e.rule)
	got := e.committed(group, topic)
	for part := range int32(2) {
		assert.Equal(t, int64(0), got[part].Offset, "partition %d: %s", part, e.rule)
		assert.Equal(t, before[part].Metadata, got[part].Metadata, "partition %d keeps the consumer's metadata", part)
	}
}

func testTime(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	group := e.cluster.Group(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var rs []*kgo.Record
	for i := range 10 {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	e.cluster.Produce(t, rs...)

	p := e.plan(group, []string{topic}, admin.At(base.Add(5*time.Second)), nil)
	require.Len(t, p.Rows, 1)
	assert.Equal(t, int64(5), p.Rows[0].New, "the record written at base+5s is offset 5: %s", e.rule)
	p2 := e.plan(group, []string{topic}, admin.At(base.Add(4500*time.Millisecond)), nil)
	assert.Equal(t, int64(5), p2.Rows[0].New, "base+4.5s: the first record at or after it is offset 5: %s", e.rule)
	late := e.plan(group, []string{topic}, admin.At(time.Now().Add(time.Hour)), nil)
	assert.Equal(t, int64(10), late.Rows[0].New, "no record at or after the time: the log end: %s", e.rule)

	require.NoError(t, p.Apply(e.ctx()))
	got := e.committed(group, topic)
	assert.Equal(t, commit{5, offsetstore.EncodeMetadata(1)}, got[0], "applied, with the topic's partition count as baseline")
}

func testOffset(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1, 2}, 10)
	e.cluster.DeleteRecords(t, topic, 2, 6)

	p := e.plan(group, []string{topic}, admin.Offset(3), nil)
	rows := rowsByPartition(p)
	require.Len(t, rows, 3)
	assert.Equal(t, int64(3), rows[0].New, "inside the log: %s", e.rule)
	assert.Equal(t, int64(6), rows[2].New, "before the log start (6): clamped to it: %s", e.rule)
	assert.Contains(t, rows[2].Reason, "clamped")
	high := e.plan(group, []string{topic}, admin.Offset(1000), nil)
	for _, r := range high.Rows {
		assert.Equal(t, int64(10), r.New, "partition %d: past the log end: clamped to it: %s", r.Partition, e.rule)
	}
	require.NoError(t, p.Apply(e.ctx()))
	got := e.committed(group, topic)
	assert.Equal(t, int64(3), got[0].Offset)
	assert.Equal(t, int64(3), got[1].Offset)
	assert.Equal(t, int64(6), got[2].Offset)
}

func testNoPositionScope(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1}, 5)
	e.seed(group, topic, map[int32]int64{0: 5, 1: 5}, baselineMeta(2, 0, 1))
	e.cluster.AddPartitions(t, topic, 4)
	e.fill(topic, []int32{2, 3}, 3)

	p := e.plan(group, []string{topic}, admin.Earliest(), nil)
	t.Log("\n" + p.String())
	rows := rowsByPartition(p)
	require.Len(t, rows, 2, "exactly the two partitions without a position: %s", e.rule)
	for _, part := range []int32{2, 3} {
		r, ok := rows[part]
		require.True(t, ok, "partition %d has no position: %s", part, e.rule)
		assert.Equal(t, int64(-1), r.Current)
		assert.Equal(t, int32(2), r.Baseline, "partition %d records the group's baseline: %s", part, e.rule)
		assert.Equal(t, "group", r.BaselineFrom)
	}
	require.NoError(t, p.Apply(e.ctx()))
	got := e.committed(group, topic)
	for part := range int32(4) {
		want := commit{0, offsetstore.EncodeMetadata(2)}
		if part < 2 {
			want.Offset = 5
		}
		assert.Equal(t, want, got[part], "partition %d: %s", part, e.rule)
	}
	again := e.plan(group, []string{topic}, admin.Earliest(), nil)
	assert.Empty(t, again.Rows, "after the reset every partition has a position")
}

func testNeverRead(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 3)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0}, 4)
	p := e.plan(group, []string{topic}, admin.Earliest(), &admin.PlanOptions{Partitions: []polykafka.TopicPartition{tp(topic, 0)}})
	require.Len(t, p.Rows, 1)
	assert.Equal(t, int32(3), p.Rows[0].Baseline, e.rule)
	assert.Equal(t, "partition count", p.Rows[0].BaselineFrom)
	require.NoError(t, p.Apply(e.ctx()))
	assert.Equal(t, map[int32]commit{0: {0, offsetstore.EncodeMetadata(3)}}, e.committed(group, topic), e.rule)

	_, err := admin.Plan(e.ctx(), e.backend, group, []string{topic}, admin.Earliest(),
		&admin.PlanOptions{Partitions: []polykafka.TopicPartition{tp(topic, 3)}})
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), "a partition the topic does not have: %v", err)
}

// decisions records the consumer's start decisions.
type decisions struct {
	mu sync.Mutex
	m  map[int32]discovery.Decision
}

func (d *decisions) OnStartDecision(dec discovery.Decision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[dec.Partition]; !ok {
		d.m[dec.Partition] = dec
	}
}

func (d *decisions) get() map[int32]discovery.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[int32]discovery.Decision, len(d.m))
	for k, v := range d.m {
		out[k] = v
	}
	return out
}

func testGuarantee(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1}, 10)
	// The group read the topic with polykafka: baseline 2.
	e.seed(group, topic, map[int32]int64{0: 8, 1: 7}, baselineMeta(2, 0, 1))
	p := e.plan(group, []string{topic}, admin.Offset(3), &admin.PlanOptions{Partitions: []polykafka.TopicPartition{tp(topic, 0)}})
	require.NoError(t, p.Apply(e.ctx()))

	e.cluster.AddPartitions(t, topic, 3)
	e.fill(topic, []int32{2}, 4)
	d := &decisions{m: make(map[int32]discovery.Decision)}
	c, err := consumer.New(e.ctx(), e.backend, group, []string{topic}, &consumer.Options{Hooks: []any{d}, DiscoveryInterval: -1})
	require.NoError(t, err, "consumer.New")
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for len(d.get()) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := d.get()
	require.Len(t, got, 3, "the consumer decides every partition")
	assert.Equal(t, discovery.ReasonCommitted, got[0].Reason, "partition 0 resumes at its reset commit: %s", e.rule)
	assert.Equal(t, int64(3), got[0].Offset)
	assert.Equal(t, discovery.ReasonCommitted, got[1].Reason, "partition 1 resumes at its commit: %s", e.rule)
	assert.Equal(t, int64(7), got[1].Offset)
	assert.Equal(t, discovery.ReasonNewPartition, got[2].Reason, "partition 2, added after the group read the topic, is new: %s", e.rule)
	assert.Equal(t, int64(0), got[2].Offset, "a new partition starts at earliest: %s", e.rule)
}

func testMissingTopic(t *testing.T, e *env) {
	_, err := admin.Plan(e.ctx(), e.backend, e.cluster.Group(t), []string{testcluster.Name(t, "missing")}, admin.Earliest(), nil)
	assert.Equal(t, polykafka.NotFound, polykafka.Code(err), "%v: %s", err, e.rule)
}

// hidden is a backend whose Administrator is hidden: only driver.Backend's
// methods are promoted.
type hidden struct{ driver.Backend }

func testUnimplemented(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 1)
	_, err := admin.Plan(e.ctx(), hidden{e.backend}, e.cluster.Group(t), []string{topic}, admin.Earliest(), nil)
	require.Error(t, err)
	assert.Equal(t, polykafka.Unimplemented, polykafka.Code(err), "%v: %s", err, e.rule)
	assert.True(t, errors.Is(err, polykafka.ErrUnimplemented))
}
