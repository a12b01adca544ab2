package admintest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka/admin"
	"github.com/polykafka/polykafka/discovery"
)

// testLag: admin.Lag describes every partition of the group's topics; a
// partition without a usable position is counted from where the decision
// table would start it, and flagged.
func testLag(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	never := e.cluster.Topic(t, 1)
	group := e.cluster.Group(t)
	e.fill(topic, []int32{0, 1}, 10)
	e.fill(never, []int32{0}, 5)
	// p0 committed at 4, p1 at 10 (caught up), both with baseline 2; then
	// the topic grows to 4 partitions, p2 gets records, and retention
	// deletes p0's records below 6, past its commit (out of range).
	e.seed(group, topic, map[int32]int64{0: 4, 1: 10}, baselineMeta(2, 0, 1))
	e.cluster.AddPartitions(t, topic, 4)
	e.fill(topic, []int32{2}, 7)
	e.cluster.DeleteRecords(t, topic, 0, 6)

	g, err := admin.Lag(e.ctx(), e.backend, group, []string{topic, never}, nil)
	require.NoError(t, err, "Lag: %s", e.rule)
	t.Log("\n" + g.String())
	assert.Equal(t, group, g.Group)
	assert.Zero(t, g.Members, "the group has no active member")
	require.Len(t, g.Rows, 5, "one row per partition of the topics: %s", e.rule)
	want := []admin.LagRow{
		{TopicPartition: tp(topic, 0), Current: 4, LogStart: 6, LogEnd: 10, Position: 6, Reason: discovery.ReasonOutOfRange, Estimated: true, Lag: 4},
		{TopicPartition: tp(topic, 1), Current: 10, LogStart: 0, LogEnd: 10, Position: 10, Reason: discovery.ReasonCommitted, Lag: 0},
		{TopicPartition: tp(topic, 2), Current: -1, LogStart: 0, LogEnd: 7, Position: 0, Reason: discovery.ReasonNewPartition, Estimated: true, Lag: 7},
		{TopicPartition: tp(topic, 3), Current: -1, LogStart: 0, LogEnd: 0, Position: 0, Reason: discovery.ReasonNewPartition, Estimated: true, Lag: 0},
		{TopicPartition: tp(never, 0), Current: -1, LogStart: 0, LogEnd: 5, Position: 5, Reason: discovery.ReasonInitial, Estimated: true, Lag: 0},
	}
	byTP := map[string]admin.LagRow{}
	for _, r := range g.Rows {
		byTP[r.TopicPartition.String()] = r
	}
	for _, w := range want {
		assert.Equal(t, w, byTP[w.TopicPartition.String()], "%s: %s", w.TopicPartition, e.rule)
	}
	assert.Equal(t, int64(11), g.Total(), "the total is the sum of the rows' lag")
	assert.Contains(t, g.String(), "(estimated)", "the table flags estimated rows")

	// With Initial=earliest the never-read topic counts its whole log.
	g, err = admin.Lag(e.ctx(), e.backend, group, []string{never}, &admin.LagOptions{Initial: discovery.Earliest})
	require.NoError(t, err, "Lag: %s", e.rule)
	require.Len(t, g.Rows, 1)
	assert.Equal(t, int64(5), g.Rows[0].Lag, "a never-read topic at Initial=earliest lags by its whole log: %s", e.rule)
}
