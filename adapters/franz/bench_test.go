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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// benchTopic creates a 6-partition topic that is deleted again when b ends,
// so that the in-process broker does not carry earlier variants' records
// (memory, GC work) into later ones.
func benchTopic(b *testing.B, tc *testcluster.Cluster) string {
	b.Helper()
	topic := tc.Topic(b, benchPartitions)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := tc.Admin().DeleteTopics(ctx, topic); err != nil {
			b.Logf("delete %s: %v", topic, err)
		}
	})
	return topic
}

const (
	benchPartitions = 6
	benchValueSize  = 100
)

var benchValue = make([]byte, benchValueSize)

// portableRecordSink keeps raw+record's extra record on the heap.
var portableRecordSink *polykafka.Record

// measure is one measured section: wall time and MemStats deltas.
type measure struct {
	start   time.Time
	mallocs uint64
	bytes   uint64
}

func (m *measure) begin() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs, m.bytes = ms.Mallocs, ms.TotalAlloc
	m.start = time.Now()
}

// end reports the metrics for n records.
func (m *measure) end(b *testing.B, n int) {
	elapsed := time.Since(m.start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(ms.Mallocs-m.mallocs)/float64(n), "allocs/record")
	b.ReportMetric(float64(ms.TotalAlloc-m.bytes)/float64(n), "B/record")
}

// errCount counts failed sends and keeps the first error. It is kept out of
// the callbacks so that their success path allocates nothing (taking the
// address of a callback's err parameter would move it to the heap on every
// call).
type errCount struct {
	mu    sync.Mutex
	n     int
	first error
}

func (e *errCount) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		e.first = err
	}
	e.n++
}

func (e *errCount) check(b *testing.B) {
	b.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > 0 {
		b.Fatalf("%d records failed, first: %v", e.n, e.first)
	}
}

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
		topic := benchTopic(b, tc)
		ctx := context.Background()
		// Portable defaults: acks all, idempotent, linger 0, no compression.
		p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: brokers}), &producer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: benchValue}); err != nil {
			b.Fatal(err)
		}

		var acks ackCount
		cb := func(_ *polykafka.Record, err error) { acks.add(err) }
		timeSends(b, &acks, func() {
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Value: benchValue}, cb)
		}, func() error { return p.Flush(ctx) })
	})
}

// benchRawProduce produces b.N records with a plain kgo client set up like
// the adapter's producer with the portable defaults. With portableRecord it
// also allocates (and discards) one polykafka.Record per send.
func benchRawProduce(b *testing.B, tc *testcluster.Cluster, portableRecord bool) {
	topic := benchTopic(b, tc)
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
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: benchValue}).FirstErr(); err != nil {
		b.Fatal(err)
	}

	var acks ackCount
	promise := func(_ *kgo.Record, err error) { acks.add(err) }
	timeSends(b, &acks, func() {
		if portableRecord {
			portableRecordSink = &polykafka.Record{Topic: topic, Value: benchValue}
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: benchValue}, promise)
	}, func() error { return cl.Flush(ctx) })
}

// ackCount counts the acknowledged records of a produce benchmark and keeps
// its errors. One value serves every record: its callback is one func value
// made once, never a closure per record.
type ackCount struct {
	acks atomic.Int64
	errs errCount
}

func (a *ackCount) add(err error) {
	if err != nil {
		a.errs.add(err)
		return
	}
	a.acks.Add(1)
}

// timeSends is the measured section shared by the produce variants: b.N
// calls of send, then flush, timed and counted by measure; every record
// must have been acknowledged.
func timeSends(b *testing.B, acks *ackCount, send func(), flush func() error) {
	b.Helper()
	runtime.GC()
	b.ResetTimer()
	var m measure
	m.begin()
	for i := 0; i < b.N; i++ {
		send()
	}
	if err := flush(); err != nil {
		b.Fatal(err)
	}
	m.end(b, b.N)
	b.StopTimer()

	acks.errs.check(b)
	if got := acks.acks.Load(); got != int64(b.N) {
		b.Fatalf("acked %d records, want %d", got, b.N)
	}
}

// fillTopic creates a 6-partition topic holding n records of 100 bytes
// with nil keys.
func fillTopic(b *testing.B, tc *testcluster.Cluster, n int) string {
	b.Helper()
	topic := benchTopic(b, tc)
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var errs errCount
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			errs.add(err)
		}
	}
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: benchValue}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	errs.check(b)
	return topic
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
		topic := fillTopic(b, tc, b.N)
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
		var m measure
		var sink int
		count := 0
		each := func(r *kgo.Record) {
			count++
			if count == 1 {
				m.begin()
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
		m.end(b, b.N)
		b.StopTimer()
		if count != b.N || sink != b.N*benchValueSize {
			b.Fatalf("consumed %d records (%d bytes), want %d", count, sink, b.N)
		}
	})

	// Run's handler gets each record by value from a reused buffer: the
	// record path allocates nothing of polykafka's per record.
	b.Run("polykafka", func(b *testing.B) { benchPortableConsume(b, tc, false) })
	b.Run("polykafka-batch", func(b *testing.B) { benchPortableConsume(b, tc, true) })
}

func benchPortableConsume(b *testing.B, tc *testcluster.Cluster, batch bool) {
	brokers := tc.Brokers()
	topic := fillTopic(b, tc, b.N)
	group := tc.Group(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: brokers}), group, []string{topic},
		&consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			b.Error(err)
		}
	}()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runtime.GC()
	b.ResetTimer()
	var m measure
	var sink int
	count := 0
	each := func(r *polykafka.Record) {
		count++
		if count == 1 {
			m.begin()
		}
		sink += len(r.Value)
		if count == b.N {
			m.end(b, b.N)
			stop()
		}
	}
	if batch {
		err = c.RunBatch(runCtx, func(_ context.Context, rs []polykafka.Record) error {
			for i := range rs {
				each(&rs[i])
			}
			return nil
		})
	} else {
		err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
			each(&r)
			return nil
		})
	}
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if ctx.Err() != nil {
		b.Fatalf("timed out after %d of %d records", count, b.N)
	}
	if count != b.N || sink != b.N*benchValueSize {
		b.Fatalf("consumed %d records (%d bytes), want %d", count, sink, b.N)
	}
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
	tc.Produce(b, &kgo.Record{Topic: topic, Partition: 2, Value: benchValue})
	select {
	case at := <-got:
		b.StopTimer()
		return at.Sub(grown)
	case <-ctx.Done():
		b.Fatal("the new partition's record never arrived")
	}
	return 0
}
