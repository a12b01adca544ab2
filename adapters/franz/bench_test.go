package franz_test

// Benchmarks of the franz adapter against raw franz-go with equivalent
// settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 1000000x -count 3 ./adapters/franz/
//
// b.N is the number of records. Every variant reports
//
//   - records/s: records over the measured section's wall time;
//   - ns/op: the same, as ns per record (overrides the timer's ns/op);
//   - allocs/record and B/record: runtime.MemStats deltas over the measured
//     section divided by the records.
//
// On the in-process kfake cluster (the default, see internal/testcluster)
// the broker runs in the test process, so allocs/record and B/record
// include the broker's allocations for those records as well. They are the
// same for both variants of a benchmark, so the difference polykafka - raw
// is the adapter's (and the portable layer's) cost; the absolute numbers
// are not the client's alone. Set KAFKA_BROKERS to measure against an
// external cluster, where only the clients allocate in-process.

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// portableRecordSink keeps raw+record's extra record on the heap.
var portableRecordSink *polykafka.Record

// BenchmarkProduce sends b.N records of 100 bytes with nil keys
// asynchronously and flushes, measuring from the first send to the end of
// the flush. Both variants use acks=all, idempotence, linger 0, no
// compression and kgo's UniformBytesPartitioner (kgo's default, which the
// adapter wraps). Each variant gets a fresh 6-partition topic, and the
// client's metadata for it is loaded by one synchronous send before the
// measurement.
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	b.Run("raw", func(b *testing.B) { benchRawProduce(b, tc, false) })
	// raw+record is raw with one more allocation per record: the
	// polykafka.Record a user of the portable API builds for each send,
	// discarded. It isolates what the record representation costs (an
	// extra 144-byte object per record, and the GC work it brings) from
	// what the adapter and the portable layer cost.
	b.Run("raw+record", func(b *testing.B) { benchRawProduce(b, tc, true) })

	b.Run("polykafka", func(b *testing.B) {
		topic := benchkit.Topic(b, tc)
		ctx := context.Background()
		// Portable defaults: acks all, idempotent, linger 0, no compression.
		p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: brokers}), &producer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: benchkit.Value}); err != nil {
			b.Fatal(err)
		}

		var acks benchkit.Acks
		cb := func(_ *polykafka.Record, err error) { acks.Add(err) }
		benchkit.TimeSends(b, &acks, func() {
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Value: benchkit.Value}, cb)
		}, func() error { return p.Flush(ctx) })
	})
}

// benchRawProduce produces b.N records with a plain kgo client set up like
// the adapter's producer with the portable defaults. With portableRecord it
// also allocates (and discards) one polykafka.Record per send.
func benchRawProduce(b *testing.B, tc *testcluster.Cluster, portableRecord bool) {
	topic := benchkit.Topic(b, tc)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(tc.Brokers()...),
		kgo.RequiredAcks(kgo.AllISRAcks()),                // kgo's default, idempotent by default
		kgo.ProducerLinger(0),                             // kgo's default is 10ms
		kgo.ProducerBatchCompression(kgo.NoCompression()), // kgo's default is snappy
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, true, true, nil)),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: benchkit.Value}).FirstErr(); err != nil {
		b.Fatal(err)
	}

	var acks benchkit.Acks
	promise := func(_ *kgo.Record, err error) { acks.Add(err) }
	benchkit.TimeSends(b, &acks, func() {
		if portableRecord {
			portableRecordSink = &polykafka.Record{Topic: topic, Value: benchkit.Value}
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: benchkit.Value}, promise)
	}, func() error { return cl.Flush(ctx) })
}

// BenchmarkConsume reads b.N records (100-byte values, nil keys, written to
// a fresh 6-partition topic before the timer) as the only member of a new
// consumer group, from the earliest offset, 1000 records per poll. The
// measured section runs from the delivery of the first record to that of
// the last, so the group join (and polykafka's start decisions) are left
// out for both variants.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	b.Run("raw", func(b *testing.B) {
		topic := benchkit.FillTopic(b, tc, b.N)
		group := tc.Group(b)
		// Equivalent settings: the same eager range balancer as the
		// adapter, and reset to the start. For commits, kgo's default
		// autocommit (every 5s) is the closest equivalent of polykafka's
		// default CommitPeriodic (every 5s, processed offsets); the
		// adapter itself disables kgo's autocommit because the portable
		// layer commits.
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(brokers...),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.Balancers(kgo.RangeBalancer()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()

		runtime.GC()
		b.ResetTimer()
		var m benchkit.Measure
		var sink int
		count := 0
		each := func(r *kgo.Record) {
			count++
			if count == 1 {
				m.Begin()
			}
			sink += len(r.Value)
		}
		for count < b.N {
			fs := cl.PollRecords(ctx, 1000)
			if fs.IsClientClosed() || ctx.Err() != nil {
				b.Fatalf("poll stopped after %d of %d records: %v", count, b.N, ctx.Err())
			}
			fs.EachError(func(t string, p int32, err error) {
				b.Fatalf("fetch %s/%d: %v", t, p, err)
			})
			fs.EachRecord(each)
		}
		m.End(b, b.N)
		b.StopTimer()
		if count != b.N || sink != b.N*benchkit.ValueSize {
			b.Fatalf("consumed %d records (%d bytes), want %d", count, sink, b.N)
		}
	})

	// Run's handler gets each record by value from a reused buffer: the
	// record path allocates nothing of polykafka's per record.
	backend := franz.New(polykafka.Connection{Brokers: brokers})
	b.Run("polykafka", func(b *testing.B) { benchkit.PortableConsume(b, backend, tc, false) })
	b.Run("polykafka-batch", func(b *testing.B) { benchkit.PortableConsume(b, backend, tc, true) })
}

// BenchmarkDiscoveryLatency measures, per iteration, the time from
// CreatePartitions returning to the first record of the new partition
// reaching the handler, for a one-member group at Initial=latest, with the
// default discovery interval and a 1s one. Run it with few iterations:
//
//	go test -run '^$' -bench DiscoveryLatency -benchtime 5x ./adapters/franz/
func BenchmarkDiscoveryLatency(b *testing.B) {
	tc := testcluster.New(b)
	for _, interval := range []time.Duration{time.Second, discovery.DefaultInterval} {
		b.Run(interval.String(), func(b *testing.B) {
			b.StopTimer() // only growth -> first record is timed
			// Each iteration takes seconds: at most 8, whatever -benchtime
			// asks, so that "-bench . -benchtime 1000000x" still ends.
			n := min(b.N, 8)
			var total time.Duration
			for i := 0; i < n; i++ {
				total += discoveryOnce(b, tc, interval)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms-to-first-record")
		})
	}
}

func discoveryOnce(b *testing.B, tc *testcluster.Cluster, interval time.Duration) time.Duration {
	b.Helper()
	topic, group := tc.Topic(b, 2), tc.Group(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: tc.Brokers()}), group, []string{topic},
		&consumer.Options{DiscoveryInterval: interval})
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
	// Grow at a random phase of the discovery ticker, as in production.
	time.Sleep(time.Duration(rand.Int64N(int64(interval))))
	b.StartTimer()
	tc.AddPartitions(b, topic, 3)
	grown := time.Now()
	tc.Produce(b, &kgo.Record{Topic: topic, Partition: 2, Value: benchkit.Value})
	select {
	case at := <-got:
		b.StopTimer()
		return at.Sub(grown)
	case <-ctx.Done():
		b.Fatal("the new partition's record never arrived")
	}
	return 0
}
