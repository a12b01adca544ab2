// Package kafkagobench is the kafka-go backend's benchmark pair: raw
// kafka-go and the kafkago adapter with equivalent settings, for the
// adapter's go test benchmarks and the pkbench command.
package kafkagobench

import (
	"context"
	"runtime"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/kafkago"
	"github.com/polykafka/polykafka/internal/benchkit"
)

// Pair is the kafka-go backend's cases.
var Pair = benchkit.Pair{
	Backend:     "kafka-go",
	RawProduce:  RawProduce,
	PolyProduce: PolyProduce,
	RawConsume:  RawConsume,
	PolyConsume: PolyConsume,
}

// RecordSink keeps the "record" variant's extra record on the heap (a
// store the compiler cannot drop).
var RecordSink *polykafka.Record

// RawProduce sends s.N records asynchronously with a kafka.Writer and
// waits for every acknowledgement, measuring from the first send to the
// last acknowledgement. The Writer is set up as the adapter sets it: Async,
// acks=all, no compression, the BatchTimeout the adapter derives from the
// portable Linger (1µs for 0: kafka-go's zero means 1 s), BatchSize 100
// (kafka-go's default), the Murmur2Balancer (random for nil keys) and a
// Transport with a 1 s MetadataTTL. kafka-go has no idempotent producer, so
// neither side is. Variant "record" also allocates (and discards) one
// polykafka.Record per send.
func RawProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	var acks benchkit.Acks
	tr := &kafka.Transport{MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(s.Brokers...),
		Async:        true,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: max(s.Linger, time.Microsecond),
		Balancer:     kafka.Murmur2Balancer{},
		Transport:    tr,
		Completion: func(msgs []kafka.Message, err error) {
			for range msgs {
				acks.Add(err)
			}
		},
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Topic: s.Topic, Value: s.Value}); err != nil {
		return benchkit.Result{}, err
	}
	if err := acks.Wait(ctx, 1, time.Millisecond); err != nil {
		return benchkit.Result{}, err
	}
	if err := acks.Check(1); err != nil {
		return benchkit.Result{}, err
	}
	acks.Reset()
	record := s.Variant == "record"
	return benchkit.TimeSends(s, &acks, func() {
		if record {
			RecordSink = &polykafka.Record{Topic: s.Topic, Value: s.Value}
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: s.Topic, Value: s.Value}); err != nil {
			acks.Add(err)
		}
	}, func() error { return acks.Wait(ctx, int64(s.N), time.Millisecond) })
}

// PolyProduce is RawProduce through the kafkago adapter with the portable
// defaults and s.Linger. The adapter holds at most 10,000 undelivered
// records (its MaxBufferedRecords default); Variant "unbounded" buffers
// without bound, as the raw Writer does.
func PolyProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	opts := &kafkago.Options{}
	if s.Variant == "unbounded" {
		opts.MaxBufferedRecords = -1
	}
	return benchkit.PortableProduce(ctx, kafkago.New(polykafka.Connection{Brokers: s.Brokers}, opts), s)
}

// RawConsume reads s.N records with kafka-go's own group consumer: a
// kafka.Reader with the range balancer, FirstOffset, 1 MiB fetches and a
// 5 s CommitInterval (the closest equivalent of polykafka's periodic
// commits), read with FetchMessage, measured from the first record to the
// last so that the group join is left out.
func RawConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           s.Brokers,
		GroupID:           s.Group,
		Topic:             s.Topic,
		GroupBalancers:    []kafka.GroupBalancer{kafka.RangeGroupBalancer{}},
		StartOffset:       kafka.FirstOffset,
		MaxBytes:          1 << 20,
		MaxWait:           500 * time.Millisecond,
		CommitInterval:    5 * time.Second,
		HeartbeatInterval: 250 * time.Millisecond,
	})
	defer r.Close()
	runtime.GC()
	var m benchkit.Measure
	sink := 0
	for count := 0; count < s.N; count++ {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			return benchkit.Result{}, err
		}
		if count == 0 {
			m.Begin()
		}
		sink += len(msg.Value)
	}
	res := m.End(s.N, len(s.Value))
	return res, benchkit.CheckConsumed(s, s.N, sink)
}

// PolyConsume is RawConsume through the kafkago adapter and the portable
// consumer's Run (RunBatch for Variant "batch").
func PolyConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableConsume(ctx, kafkago.New(polykafka.Connection{Brokers: s.Brokers}, nil), s)
}
