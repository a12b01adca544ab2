package kafkago_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

func openReader(t *testing.T, cl *testcluster.Cluster) driver.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := newTestBackend(cl).(driver.PartitionReader).OpenReader(ctx, driver.ReaderConfig{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		assert.NoError(t, r.Close(ctx), "Close")
	})
	return r
}

// offsetsOf returns the offsets of partition p's records in rs.
func offsetsOf(rs []polykafka.Record, p int32) []int64 {
	var out []int64
	for _, r := range rs {
		if r.Partition == p {
			out = append(out, r.Offset)
		}
	}
	return out
}

func TestReaderAssignRestartPause(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 3)
	for p := int32(0); p < 3; p++ {
		produceN(t, cl, topic, p, 5)
	}
	r := openReader(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	rs, err := r.Fetch(short, 10, nil)
	cancel2()
	assert.Empty(t, rs, "nothing is fetched before Assign")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "Fetch honours its context")

	require.NoError(t, r.Assign(ctx, map[tp]int64{tpOf(topic, 0): 2, tpOf(topic, 1): 0}))
	rs = fetchUntil(t, r, 8, 10*time.Second)
	assert.Equal(t, []int64{2, 3, 4}, offsetsOf(rs, 0), "a partition starts exactly at its offset")
	assert.Equal(t, []int64{0, 1, 2, 3, 4}, offsetsOf(rs, 1))
	assert.Empty(t, offsetsOf(rs, 2), "a partition not assigned is not read")

	// Assign of an assigned partition restarts it; the others go on.
	require.NoError(t, r.Assign(ctx, map[tp]int64{tpOf(topic, 0): 1}))
	rs = fetchUntil(t, r, 4, 10*time.Second)
	assert.Equal(t, []int64{1, 2, 3, 4}, offsetsOf(rs, 0), "Assign restarts an assigned partition at the offset")

	p := r.(driver.Pauser)
	require.NoError(t, p.Pause(ctx, []tp{tpOf(topic, 1)}))
	produceN(t, cl, topic, 1, 2)
	produceN(t, cl, topic, 0, 1)
	rs = fetchUntil(t, r, 1, 10*time.Second)
	short, cancel2 = context.WithTimeout(ctx, 500*time.Millisecond)
	more, _ := r.Fetch(short, 10, nil)
	cancel2()
	assert.Empty(t, offsetsOf(append(rs, more...), 1), "a paused partition delivers nothing")
	require.NoError(t, p.Resume(ctx, []tp{tpOf(topic, 1)}))
	rs = fetchUntil(t, r, 2, 10*time.Second)
	assert.Equal(t, []int64{5, 6}, offsetsOf(rs, 1), "Resume goes on at the first record not returned")

	var kc *kafka.Client
	assert.True(t, r.As(&kc))
	assert.NotNil(t, kc)
	var cg *kafka.ConsumerGroup
	assert.False(t, r.As(&cg), "a reader has no consumer group")
	assert.False(t, r.As(nil))
}

func TestReaderOutOfRange(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	produceN(t, cl, topic, 0, 3)
	produceN(t, cl, topic, 1, 3)
	r := openReader(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, r.Assign(ctx, map[tp]int64{tpOf(topic, 0): 50, tpOf(topic, 1): 0}))
	var err error
	var got []polykafka.Record
	for err == nil && ctx.Err() == nil {
		var rs []polykafka.Record
		rs, err = r.Fetch(ctx, 10, nil)
		got = append(got, rs...)
	}
	require.Error(t, err)
	parts, rest := driver.PartitionErrors(err)
	require.NoError(t, rest)
	require.Len(t, parts, 1)
	assert.Equal(t, tpOf(topic, 0), parts[0].TopicPartition)
	assert.Equal(t, polykafka.OffsetOutOfRange, r.ErrorCode(err))
	for len(got) < 3 {
		got = append(got, fetchUntil(t, r, 3-len(got), 10*time.Second)...)
	}
	assert.Equal(t, []int64{0, 1, 2}, offsetsOf(got, 1), "the other partition is fetched")

	short, cancel2 := context.WithTimeout(ctx, time.Second)
	rs, err := r.Fetch(short, 10, nil)
	cancel2()
	assert.Empty(t, rs)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "out of range is reported once and the partition is not fetched again")

	require.NoError(t, r.Assign(ctx, map[tp]int64{tpOf(topic, 0): 1}))
	rs = fetchUntil(t, r, 2, 10*time.Second)
	assert.Equal(t, []int64{1, 2}, offsetsOf(rs, 0), "Assign moves an out-of-range partition")
}

func TestReaderClose(t *testing.T) {
	t.Parallel()
	cl := testcluster.New(t)
	topic := cl.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := newTestBackend(cl).(driver.PartitionReader).OpenReader(ctx, driver.ReaderConfig{Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, r.Assign(ctx, map[tp]int64{tpOf(topic, 0): 0}))
	fetched := make(chan error, 1)
	go func() {
		_, err := r.Fetch(ctx, 10, nil) // blocks: the partition is empty
		fetched <- err
	}()
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, r.Close(ctx))
	select {
	case err := <-fetched:
		assert.Equal(t, polykafka.Closed, r.ErrorCode(err), "a Fetch in progress ends with Close: %v", err)
	case <-ctx.Done():
		t.Fatal("Fetch did not return after Close")
	}
	_, err = r.Fetch(ctx, 10, nil)
	assert.Equal(t, polykafka.Closed, r.ErrorCode(err))
	assert.Equal(t, polykafka.Closed, r.ErrorCode(r.Assign(ctx, map[tp]int64{tpOf(topic, 0): 0})))
	assert.NoError(t, r.Close(ctx), "a second Close does nothing")
}
