package polysarama

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// TestBlockedProduceHonoursContextAndClose: with sarama's pipeline stuck
// (its metadata request to a broker that never answers) and the feeder's
// queue full, a Produce waits for room, returns when its context ends and
// fails its record with the context's error; the records queued behind
// the stuck send are delivered by Close, each exactly once.
func TestBlockedProduceHonoursContextAndClose(t *testing.T) {
	t.Parallel()
	b := New(polykafka.Connection{Brokers: []string{testcluster.SilentAddress(t)}}, nil)
	d := &delivery{}
	dp, err := b.OpenProducer(ctxT(t, 5*time.Second), driver.ProducerConfig{
		Acks: -1, Idempotence: driver.IdempotenceOff, DeliveryTimeout: time.Minute, Delivered: d.fn, Logger: testLogger(t),
	})
	require.NoError(t, err)
	p := dp.(*producer)
	eventually(t, 10*time.Second, func() bool { return p.ap.Load() != nil }, "sarama's producer (not idempotent: no broker needed) was not created")

	var produced atomic.Int64
	// A Produce that waits for room may get it just before its context
	// ends while sarama's pipeline is still filling up; once it is stuck,
	// it stays stuck, and the next round's Produce waits for good.
	for round := 0; d.total.Load() == 0; round++ {
		require.Less(t, round, 20, "no Produce waiting for room failed when its context ended")
		ctx, cancel := context.WithCancel(context.Background())
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			for ctx.Err() == nil {
				p.Produce(ctx, &polykafka.Record{Topic: "t", Partition: polykafka.AnyPartition, Value: []byte("v")}, nil)
				produced.Add(1)
			}
		}()
		eventually(t, 10*time.Second, func() bool {
			p.feed.mu.Lock()
			defer p.feed.mu.Unlock()
			return p.feed.space != nil
		}, "no Produce waited for room in the feeder's queue")
		cancel()
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("a Produce waiting for room did not return when its context ended")
		}
	}
	d.mu.Lock()
	for _, err := range d.errs {
		assert.ErrorIs(t, err, context.Canceled, "a record fails with its context's error before Close")
	}
	d.mu.Unlock()

	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	defer ccancel()
	_ = p.Close(cctx) // gives up on sarama's drain: the pipeline is stuck
	assert.Equal(t, produced.Load(), d.total.Load(), "Close delivers every record")
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.recs {
		if n != 1 {
			assert.Equal(t, 1, n, "Delivered is called exactly once per record")
			break
		}
	}
}
