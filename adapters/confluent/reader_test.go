//go:build cgo

package confluent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// readUntil fetches from r until cond holds for the records fetched so
// far, or fails after d. Errors are collected, not fatal. Each Fetch has
// 5s: the out-of-range search lists offsets within Fetch's context (a
// librdkafka ListOffsets takes about a second on kfake).
func readUntil(t *testing.T, r driver.Reader, d time.Duration, cond func([]polykafka.Record, []error) bool) ([]polykafka.Record, []error) {
	t.Helper()
	var all []polykafka.Record
	var errs []error
	deadline := time.Now().Add(d)
	for !cond(all, errs) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v (%d records, errors %v)", d, len(all), errs)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rs, err := r.Fetch(ctx, 100, nil)
		cancel()
		if err != nil && err != context.DeadlineExceeded { //nolint:errorlint // only Fetch's own timeout is not collected
			errs = append(errs, err)
		}
		all = append(all, rs...)
	}
	return all, errs
}

func TestReaderAssignRestartOutOfRange(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 3)
	for i := range 30 {
		cl.Produce(t, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte("x")})
	}
	b := testBackendFor(cl.Brokers())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := b.OpenReader(ctx, driver.ReaderConfig{Logger: testLogger()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, r.Close(ctx)) }()
	var kc *kafka.Consumer
	require.True(t, r.As(&kc))
	subs, err := kc.Subscription()
	require.NoError(t, err)
	assert.Empty(t, subs, "a reader never subscribes")

	p0 := polykafka.TopicPartition{Topic: topic, Partition: 0}
	p1 := polykafka.TopicPartition{Topic: topic, Partition: 1}
	require.NoError(t, r.Assign(ctx, map[polykafka.TopicPartition]int64{p0: 4, p1: 0}))
	rs, _ := readUntil(t, r, 20*time.Second, func(rs []polykafka.Record, _ []error) bool { return len(rs) >= 16 })
	first := map[polykafka.TopicPartition]int64{}
	for _, rec := range rs {
		require.NotEqual(t, int32(2), rec.Partition, "records of partitions not assigned are never returned")
		if _, ok := first[rec.TopicPartition()]; !ok {
			first[rec.TopicPartition()] = rec.Offset
		}
	}
	assert.Equal(t, map[polykafka.TopicPartition]int64{p0: 4, p1: 0}, first, "each partition starts at its offset exactly")

	// Restart p0 at 1: nothing of p0 from another position comes after.
	require.NoError(t, r.Assign(ctx, map[polykafka.TopicPartition]int64{p0: 1}))
	rs, _ = readUntil(t, r, 20*time.Second, func(rs []polykafka.Record, _ []error) bool {
		n := 0
		for _, rec := range rs {
			if rec.Partition == 0 {
				n++
			}
		}
		return n >= 9
	})
	var p0s []int64
	for _, rec := range rs {
		if rec.Partition == 0 {
			p0s = append(p0s, rec.Offset)
		}
	}
	assert.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}, p0s)

	// Out of range: reported once as a PartitionError, then not fetched
	// until Assign moves it.
	require.NoError(t, r.Assign(ctx, map[polykafka.TopicPartition]int64{p1: 50}))
	_, errs := readUntil(t, r, 20*time.Second, func(_ []polykafka.Record, errs []error) bool { return len(errs) > 0 })
	parts, rest := driver.PartitionErrors(errors.Join(errs...))
	require.NoError(t, rest)
	require.Len(t, parts, 1)
	assert.Equal(t, p1, parts[0].TopicPartition)
	assert.Equal(t, polykafka.OffsetOutOfRange, r.ErrorCode(parts[0]))
	fctx, fcancel := context.WithTimeout(ctx, time.Second)
	more, err := r.Fetch(fctx, 100, nil)
	fcancel()
	assert.Empty(t, more)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the partition is not fetched again")
	require.NoError(t, r.Assign(ctx, map[polykafka.TopicPartition]int64{p1: 8}))
	rs, _ = readUntil(t, r, 20*time.Second, func(rs []polykafka.Record, _ []error) bool { return len(rs) >= 2 })
	assert.Equal(t, int64(8), rs[0].Offset)
	assert.Equal(t, p1, rs[0].TopicPartition())

	// Pause survives a restart.
	require.NoError(t, r.(driver.Pauser).Pause(ctx, []polykafka.TopicPartition{p0}))
	require.NoError(t, r.Assign(ctx, map[polykafka.TopicPartition]int64{p0: 0}))
	fctx, fcancel = context.WithTimeout(ctx, time.Second)
	more, _ = r.Fetch(fctx, 100, nil)
	fcancel()
	assert.Empty(t, more, "a paused partition restarted stays paused")
	require.NoError(t, r.(driver.Pauser).Resume(ctx, []polykafka.TopicPartition{p0}))
	rs, _ = readUntil(t, r, 20*time.Second, func(rs []polykafka.Record, _ []error) bool { return len(rs) >= 10 })
	assert.Equal(t, int64(0), rs[0].Offset)

	assert.True(t, strings.HasPrefix(readerGroupID(), readerGroupPrefix))
}
