package kafkago

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/backoff"
)

// assertSchedule checks that s waits between min and max, growing from
// min: the native settings it was derived from are the ones honoured.
func assertSchedule(t *testing.T, s backoff.Schedule, lo, hi time.Duration) {
	t.Helper()
	assert.Equal(t, backoff.Schedule{Min: lo, Max: hi}, s)
	for range 50 {
		first := s.Delay(1)
		assert.GreaterOrEqual(t, first, lo*8/10, "the first wait starts from the minimum")
		assert.LessOrEqual(t, first, lo*12/10)
		assert.LessOrEqual(t, s.Delay(20), hi, "no wait exceeds the maximum")
	}
}

// TestReadBackoffHonoursOptions: the fetch loops wait after an error by
// Options.ReadBackoffMin/Max, kafka-go's Reader defaults when unset.
func TestReadBackoffHonoursOptions(t *testing.T) {
	b := New(polykafka.Connection{Brokers: []string{"127.0.0.1:1"}}, &Options{ReadBackoffMin: 7 * time.Millisecond, ReadBackoffMax: 70 * time.Millisecond})
	assertSchedule(t, readSchedule(b.opts), 7*time.Millisecond, 70*time.Millisecond)
	assertSchedule(t, readSchedule(Options{}), 100*time.Millisecond, time.Second)
}

// TestWriteBackoffHonoursWriter: a producer's resend of parked records
// waits by the Writer's WriteBackoffMin/Max, as ConfigureWriter set them.
func TestWriteBackoffHonoursWriter(t *testing.T) {
	b := New(polykafka.Connection{Brokers: []string{"127.0.0.1:1"}}, &Options{ConfigureWriter: func(w *kafka.Writer) {
		w.WriteBackoffMin, w.WriteBackoffMax = 9*time.Millisecond, 90*time.Millisecond
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dp, err := b.OpenProducer(ctx, driver.ProducerConfig{DeliveryTimeout: time.Second})
	require.NoError(t, err, "OpenProducer needs no broker")
	defer func() { _ = dp.Close(ctx) }()
	p := dp.(*producer)
	assertSchedule(t, writeSchedule(p.w), 9*time.Millisecond, 90*time.Millisecond)
	assertSchedule(t, writeSchedule(&kafka.Writer{}), 100*time.Millisecond, time.Second)
}
