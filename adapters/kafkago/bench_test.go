package kafkago_test

// Benchmarks of the kafkago adapter against raw kafka-go with equivalent
// settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 200000x -count 3 ./adapters/kafkago/
//
// b.N is the number of records. Every variant reports records/s, ns/op (ns
// per record), allocs/record and B/record over the measured section. On
// the in-process kfake cluster (the default) the broker runs in the test
// process, so allocs/record and B/record include the broker's allocations
// for those records too; they are the same for both variants, so the
// difference polykafka - raw is the adapter's (and the portable layer's)
// cost. Set KAFKA_BROKERS to measure against an external cluster.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/kafkago"
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

// BenchmarkProduce sends b.N records of 100 bytes with nil keys
// asynchronously and waits for every acknowledgement, measuring from the
// first send to the last acknowledgement. Both variants use a kafka.Writer
// in Async mode with acks=all, no compression, the BatchTimeout the adapter
// derives from the portable Linger, BatchSize 100 (kafka-go's default) and
// the Murmur2Balancer (random for nil keys). kafka-go has no idempotent
// producer, so neither is.
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	// linger0 is the portable default (Linger 0: a 1µs BatchTimeout, so
	// batches hold what arrives while the previous one is written);
	// linger5ms lets batches fill, which isolates the per-record cost.
	for _, lg := range []struct {
		name   string
		linger time.Duration
	}{{"linger0", 0}, {"linger5ms", 5 * time.Millisecond}} {
		batchTimeout := max(lg.linger, time.Microsecond)
		b.Run(lg.name+"/raw", func(b *testing.B) { benchRawProduce(b, brokers, tc, batchTimeout, false) })
		// raw+record is raw with the polykafka.Record a user of the
		// portable API builds for each send, discarded: it isolates what
		// the record representation costs from what the adapter and the
		// portable layer cost.
		b.Run(lg.name+"/raw+record", func(b *testing.B) { benchRawProduce(b, brokers, tc, batchTimeout, true) })
		// polykafka holds at most 10,000 undelivered records (the
		// adapter's MaxBufferedRecords default); polykafka-unbounded
		// buffers without bound, as the raw Writer does.
		for _, v := range []struct {
			name string
			max  int
		}{{"polykafka", 0}, {"polykafka-unbounded", -1}} {
			b.Run(lg.name+"/"+v.name, func(b *testing.B) { benchPortableProduce(b, brokers, tc, lg.linger, v.max) })
		}
	}
}

func benchPortableProduce(b *testing.B, brokers []string, tc *testcluster.Cluster, linger time.Duration, maxBuffered int) {
	topic := benchTopic(b, tc)
	ctx := context.Background()
	// Portable defaults but Linger: acks all, idempotence if
	// supported (kafka-go: none), no compression.
	p, err := producer.New(ctx, kafkago.New(polykafka.Connection{Brokers: brokers}, &kafkago.Options{MaxBufferedRecords: maxBuffered}), &producer.Options{Linger: linger})
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
}

// portableRecordSink keeps raw+record's extra record on the heap.
var portableRecordSink *polykafka.Record

func benchRawProduce(b *testing.B, brokers []string, tc *testcluster.Cluster, batchTimeout time.Duration, portableRecord bool) {
	topic := benchTopic(b, tc)
	var acks ackCount
	tr := &kafka.Transport{MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Async:        true,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: batchTimeout,
		Balancer:     kafka.Murmur2Balancer{},
		Transport:    tr,
		Completion: func(msgs []kafka.Message, err error) {
			for range msgs {
				acks.add(err)
			}
		},
	}
	defer w.Close()
	ctx := context.Background()
	if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: benchValue}); err != nil {
		b.Fatal(err)
	}
	waitAcks(b, &acks, 1)
	acks.acks.Store(0)
	timeSends(b, &acks, func() {
		if portableRecord {
			portableRecordSink = &polykafka.Record{Topic: topic, Value: benchValue}
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: benchValue}); err != nil {
			acks.add(err)
		}
	}, func() error { waitAcks(b, &acks, int64(b.N)); return nil })
}

// waitAcks waits until n records are acknowledged (or failed).
func waitAcks(b *testing.B, acks *ackCount, n int64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		acks.errs.mu.Lock()
		failed := acks.errs.n
		acks.errs.mu.Unlock()
		if acks.acks.Load()+int64(failed) >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("acknowledged %d of %d records within 5 minutes", acks.acks.Load(), n)
		}
		time.Sleep(time.Millisecond)
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
// consumer group, from the earliest offset. The measured section runs from
// the delivery of the first record to that of the last, so the group join
// is left out for both variants. raw is kafka-go's own group consumer: a
// kafka.Reader with the range balancer, FirstOffset, 1 MiB fetches and a
// 5 s CommitInterval (the closest equivalent of polykafka's periodic
// commits), read with FetchMessage.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	b.Run("raw", func(b *testing.B) {
		topic := fillTopic(b, tc, b.N)
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:           brokers,
			GroupID:           tc.Group(b),
			Topic:             topic,
			GroupBalancers:    []kafka.GroupBalancer{kafka.RangeGroupBalancer{}},
			StartOffset:       kafka.FirstOffset,
			MaxBytes:          1 << 20,
			MaxWait:           500 * time.Millisecond,
			CommitInterval:    5 * time.Second,
			HeartbeatInterval: 250 * time.Millisecond,
		})
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		runtime.GC()
		b.ResetTimer()
		var m measure
		sink := 0
		for count := 0; count < b.N; count++ {
			msg, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatalf("fetch after %d of %d records: %v", count, b.N, err)
			}
			if count == 0 {
				m.begin()
			}
			sink += len(msg.Value)
		}
		m.end(b, b.N)
		b.StopTimer()
		if sink != b.N*benchValueSize {
			b.Fatalf("consumed %d bytes, want %d", sink, b.N*benchValueSize)
		}
	})

	b.Run("polykafka", func(b *testing.B) { benchPortableConsume(b, tc, false) })
	b.Run("polykafka-batch", func(b *testing.B) { benchPortableConsume(b, tc, true) })
}

func benchPortableConsume(b *testing.B, tc *testcluster.Cluster, batch bool) {
	topic := fillTopic(b, tc, b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := consumer.New(ctx, kafkago.New(polykafka.Connection{Brokers: tc.Brokers()}, nil), tc.Group(b), []string{topic},
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
	sink, count := 0, 0
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
	if count != b.N || sink != b.N*benchValueSize {
		b.Fatalf("consumed %d records (%d bytes), want %d", count, sink, b.N)
	}
}
