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
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/kafkago"
	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

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
	topic := benchkit.Topic(b, tc)
	ctx := context.Background()
	// Portable defaults but Linger: acks all, idempotence if
	// supported (kafka-go: none), no compression.
	p, err := producer.New(ctx, kafkago.New(polykafka.Connection{Brokers: brokers}, &kafkago.Options{MaxBufferedRecords: maxBuffered}), &producer.Options{Linger: linger})
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
}

// portableRecordSink keeps raw+record's extra record on the heap.
var portableRecordSink *polykafka.Record

func benchRawProduce(b *testing.B, brokers []string, tc *testcluster.Cluster, batchTimeout time.Duration, portableRecord bool) {
	topic := benchkit.Topic(b, tc)
	var acks benchkit.Acks
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
				acks.Add(err)
			}
		},
	}
	defer w.Close()
	ctx := context.Background()
	if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: benchkit.Value}); err != nil {
		b.Fatal(err)
	}
	waitAcks(b, &acks, 1)
	acks.Reset()
	benchkit.TimeSends(b, &acks, func() {
		if portableRecord {
			portableRecordSink = &polykafka.Record{Topic: topic, Value: benchkit.Value}
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: benchkit.Value}); err != nil {
			acks.Add(err)
		}
	}, func() error { waitAcks(b, &acks, int64(b.N)); return nil })
}

// waitAcks waits until n records are acknowledged (or failed).
func waitAcks(b *testing.B, acks *benchkit.Acks, n int64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if acks.Done() >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("acknowledged %d of %d records within 5 minutes", acks.Acked(), n)
		}
		time.Sleep(time.Millisecond)
	}
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
		topic := benchkit.FillTopic(b, tc, b.N)
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
		var m benchkit.Measure
		sink := 0
		for count := 0; count < b.N; count++ {
			msg, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatalf("fetch after %d of %d records: %v", count, b.N, err)
			}
			if count == 0 {
				m.Begin()
			}
			sink += len(msg.Value)
		}
		m.End(b, b.N)
		b.StopTimer()
		if sink != b.N*benchkit.ValueSize {
			b.Fatalf("consumed %d bytes, want %d", sink, b.N*benchkit.ValueSize)
		}
	})

	backend := kafkago.New(polykafka.Connection{Brokers: tc.Brokers()}, nil)
	b.Run("polykafka", func(b *testing.B) { benchkit.PortableConsume(b, backend, tc, false) })
	b.Run("polykafka-batch", func(b *testing.B) { benchkit.PortableConsume(b, backend, tc, true) })
}
