package polysarama

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

func openReader(t *testing.T, b *Backend) driver.Reader {
	t.Helper()
	r, err := b.OpenReader(ctxT(t, 30*time.Second), driver.ReaderConfig{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// readN fetches from r until n records arrived or d passed, and returns
// them with the partition errors seen.
func readN(t *testing.T, r driver.Reader, n int, d time.Duration) ([]polykafka.Record, []*driver.PartitionError) {
	t.Helper()
	ctx := ctxT(t, d)
	var out []polykafka.Record
	var perrs []*driver.PartitionError
	for len(out) < n {
		rs, err := r.Fetch(ctx, 100, nil)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		parts, rest := driver.PartitionErrors(err)
		require.NoError(t, rest)
		perrs = append(perrs, parts...)
		out = append(out, rs...)
	}
	return out, perrs
}

func TestReaderAssignsExactly(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	tp0 := polykafka.TopicPartition{Topic: topic, Partition: 0}
	produceN(t, cl, topic, 0, 10, "a")
	produceN(t, cl, topic, 1, 10, "b")
	r := openReader(t, newTestBackend(cl.Brokers()))

	rs, _ := readN(t, r, 1, 500*time.Millisecond)
	assert.Empty(t, rs, "nothing is fetched before Assign")

	require.NoError(t, r.Assign(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp0: 3}))
	rs, perrs := readN(t, r, 7, 20*time.Second)
	require.Empty(t, perrs)
	require.Len(t, rs, 7)
	assert.Equal(t, int64(3), rs[0].Offset, "Assign starts exactly at its offset")
	for _, rec := range rs {
		assert.Equal(t, int32(0), rec.Partition, "records of partitions not assigned are never returned")
	}
	rs, _ = readN(t, r, 1, 500*time.Millisecond)
	assert.Empty(t, rs, "partition 1 is not assigned")

	// Assign of a partition already read restarts it there.
	require.NoError(t, r.Assign(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp0: 8}))
	rs, _ = readN(t, r, 2, 20*time.Second)
	require.Len(t, rs, 2)
	assert.Equal(t, int64(8), rs[0].Offset, "Assign restarts a partition already read")

	p := r.(driver.Pauser)
	require.NoError(t, p.Pause(ctxT(t, time.Second), []polykafka.TopicPartition{tp0}))
	produceN(t, cl, topic, 0, 5, "c") // offsets 10..14
	rs, _ = readN(t, r, 1, time.Second)
	assert.Empty(t, rs, "a paused partition hands out nothing")
	require.NoError(t, p.Resume(ctxT(t, time.Second), []polykafka.TopicPartition{tp0}))
	rs, _ = readN(t, r, 5, 20*time.Second)
	require.Len(t, rs, 5)
	assert.Equal(t, int64(10), rs[0].Offset, "Resume goes on after the last record Fetch returned")

	// Out of range: reported once, not fetched until Assign moves it.
	require.NoError(t, r.Assign(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp0: 1000}))
	rs, perrs = readN(t, r, 1, 3*time.Second)
	assert.Empty(t, rs)
	require.Len(t, perrs, 1, "an out-of-range partition is reported once")
	assert.Equal(t, tp0, perrs[0].TopicPartition)
	assert.Equal(t, polykafka.OffsetOutOfRange, r.ErrorCode(perrs[0]), "%v", perrs[0])
	require.NoError(t, r.Assign(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp0: 14}))
	rs, _ = readN(t, r, 1, 20*time.Second)
	require.Len(t, rs, 1)
	assert.Equal(t, int64(14), rs[0].Offset)

	// The group consumer's ListOffsets and PartitionCounts.
	offs, err := r.ListOffsets(ctxT(t, 10*time.Second), []polykafka.TopicPartition{tp0}, polykafka.OffsetLatest)
	require.NoError(t, err)
	assert.Equal(t, int64(15), offs[tp0])
	counts, err := r.PartitionCounts(ctxT(t, 10*time.Second), []string{topic})
	require.NoError(t, err)
	assert.Equal(t, int32(2), counts[topic])

	var scl sarama.Client
	require.True(t, r.As(&scl), "a reader exposes its sarama.Client")
	var sc sarama.Consumer
	require.True(t, r.As(&sc), "a reader exposes its sarama.Consumer")
	var cg sarama.ConsumerGroup
	assert.False(t, r.As(&cg), "a reader has no group")

	require.NoError(t, r.Close(ctxT(t, 10*time.Second)))
	_, err = r.Fetch(ctxT(t, time.Second), 10, nil)
	assert.Equal(t, polykafka.Closed, r.ErrorCode(err), "Fetch after Close: %v", err)
	assert.Equal(t, polykafka.Closed, r.ErrorCode(r.Assign(ctxT(t, time.Second), map[polykafka.TopicPartition]int64{tp0: 0})))
}

func TestReaderFetchHonoursContext(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	r := openReader(t, newTestBackend(cl.Brokers()))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Fetch(ctx, 10, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}
