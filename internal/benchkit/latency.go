package benchkit

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// NewPartitionLatency is the body of the adapters' BenchmarkNewPartitionLatency:
// per iteration, the time from CreatePartitions returning to the first
// record of the new partition reaching the handler, for a one-member group
// at Initial=latest, under both group protocols:
//
//   - classic/1s and classic/5s: the classic protocol with a 1s discovery
//     interval and the default one; discovery makes the group rebalance.
//   - consumer/hb-250ms: KIP-848 on tc (whose KIP-848 heartbeat interval
//     is 250ms on the in-process broker); the coordinator assigns the new
//     partition at the member's next heartbeat, discovery only reports it.
//   - consumer/hb-5s: KIP-848 on an in-process broker with Kafka's default
//     heartbeat interval, 5s (skipped against KAFKA_BROKERS).
//
// Growth happens at a random phase of the discovery ticker (and of the
// heartbeat), as in production. Each iteration takes seconds: at most 8
// run, whatever -benchtime asks. kip848 is false for a backend without
// KIP-848, whose consumer variants then skip.
func NewPartitionLatency(b *testing.B, tc *testcluster.Cluster, newBackend func(brokers []string) driver.Backend, kip848 bool) {
	measure := func(b *testing.B, tc *testcluster.Cluster, gp consumer.GroupProtocol, interval time.Duration) {
		b.StopTimer() // only growth -> first record is timed
		n := min(b.N, 8)
		var total time.Duration
		for i := 0; i < n; i++ {
			total += latencyOnce(b, tc, newBackend(tc.Brokers()), gp, interval)
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms-to-first-record")
	}
	for _, interval := range []time.Duration{time.Second, discovery.DefaultInterval} {
		b.Run("classic/"+interval.String(), func(b *testing.B) { measure(b, tc, consumer.GroupProtocolClassic, interval) })
	}
	b.Run("consumer/hb-250ms", func(b *testing.B) {
		if !kip848 {
			b.Skip("the backend has no KIP-848 consumer")
		}
		if ok, why := tc.KIP848(b); !ok {
			b.Skip(why)
		}
		measure(b, tc, consumer.GroupProtocolConsumer, discovery.DefaultInterval)
	})
	b.Run("consumer/hb-5s", func(b *testing.B) {
		switch {
		case !kip848:
			b.Skip("the backend has no KIP-848 consumer")
		case testcluster.External():
			b.Skip("the heartbeat interval is the external cluster's: see consumer/hb-250ms")
		}
		measure(b, testcluster.NewKIP848Heartbeat(b, 5*time.Second), consumer.GroupProtocolConsumer, discovery.DefaultInterval)
	})
}

func latencyOnce(b *testing.B, tc *testcluster.Cluster, backend driver.Backend, gp consumer.GroupProtocol, interval time.Duration) time.Duration {
	b.Helper()
	topic, group := tc.Topic(b, 2), tc.Group(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := consumer.New(ctx, backend, group, []string{topic},
		&consumer.Options{DiscoveryInterval: interval, GroupProtocol: gp})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	got := make(chan time.Time, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
			if r.Partition == 2 {
				select {
				case got <- time.Now():
				default:
				}
			}
			return nil
		})
	}()
	defer func() {
		stop()
		<-done
	}()
	for len(c.Assignment()) < 2 {
		if ctx.Err() != nil {
			b.Fatal("the consumer never took its partitions")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.Int64N(int64(interval))))
	b.StartTimer()
	tc.AddPartitions(b, topic, 3)
	grown := time.Now()
	tc.Produce(b, &kgo.Record{Topic: topic, Partition: 2, Value: Value})
	select {
	case at := <-got:
		b.StopTimer()
		return at.Sub(grown)
	case <-ctx.Done():
		b.Fatal("the new partition's record never arrived")
	}
	return 0
}
