package drivertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
)

// testConsumerLag: Consumer.Lag reports, per assigned partition, the high
// watermark and how far the processed (marked) and committed positions
// are behind it.
func testConsumerLag(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	group := e.cluster.Group(t)
	var krs []*kgo.Record
	for p, n := range map[int32]int{0: 10, 1: 4} {
		for i := range n {
			krs = append(krs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	e.cluster.Produce(t, krs...)

	c := e.newConsumer(group, []string{topic}, earliestOpts(consumer.Options{Commit: consumer.CommitManual}))
	ctx := e.ctx(basicWait)
	var got []*polykafka.Record
	deadline := time.Now().Add(basicWait)
	for len(got) < len(krs) {
		require.True(t, time.Now().Before(deadline), "%s: Poll returned %d of %d records within %v", e.rule, len(got), len(krs), basicWait)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		rs, err := c.Poll(pctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		require.NoError(t, err, "%s: Poll", e.rule)
		got = append(got, rs...)
	}
	for _, r := range got {
		if r.Partition == 1 || r.Offset < 6 {
			c.Mark(r)
		}
	}
	p0 := polykafka.TopicPartition{Topic: topic, Partition: 0}
	p1 := polykafka.TopicPartition{Topic: topic, Partition: 1}
	lags, err := c.Lag(ctx)
	require.NoError(t, err, "%s: Lag", e.rule)
	assert.Equal(t, []consumer.PartitionLag{
		{TopicPartition: p0, End: 10, Processed: 6, Committed: 0, Lag: 4, CommittedLag: 10},
		{TopicPartition: p1, End: 4, Processed: 4, Committed: 0, Lag: 0, CommittedLag: 4},
	}, lags, "%s: before Commit the committed position is the start decision (0)", e.rule)

	require.NoError(t, c.Commit(ctx), "%s: Commit", e.rule)
	lags, err = c.Lag(ctx)
	require.NoError(t, err, "%s: Lag", e.rule)
	assert.Equal(t, []consumer.PartitionLag{
		{TopicPartition: p0, End: 10, Processed: 6, Committed: 6, Lag: 4, CommittedLag: 4},
		{TopicPartition: p1, End: 4, Processed: 4, Committed: 4, Lag: 0, CommittedLag: 0},
	}, lags, "%s: after Commit the committed position is the processed one", e.rule)

	require.NoError(t, c.Close(), "%s: Close", e.rule)
	_, err = c.Lag(ctx)
	assert.Equal(t, polykafka.Closed, polykafka.Code(err), "%s: Lag after Close fails with Closed", e.rule)
}
