//go:build cgo

package confluent_test

// Benchmarks of the confluent adapter against raw confluent-kafka-go with
// equivalent settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 200000x -count 3 ./adapters/confluent/
//
// b.N is the number of records. Every variant reports records/s, ns/op
// (per record), allocs/record and B/record (runtime.MemStats deltas over
// the measured section, which on the in-process kfake cluster include the
// broker's allocations, the same for both variants: the difference is the
// adapter's and the portable layer's cost). librdkafka's own (C)
// allocations are not counted.

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// rawProducerConfig is what the adapter sets for producer.Options' zero
// value: acks=all, idempotence (IdempotenceAuto), no compression, linger 0,
// the murmur2 partitioner, no key or value copies in delivery reports.
func rawProducerConfig(brokers []string) *kafka.ConfigMap {
	return &kafka.ConfigMap{
		"bootstrap.servers":         brokers[0],
		"acks":                      -1,
		"enable.idempotence":        true,
		"compression.type":          "none",
		"linger.ms":                 0,
		"partitioner":               "murmur2_random",
		"go.delivery.report.fields": "none",
		"go.logs.channel.enable":    true,
	}
}

func drainLogs(ch chan kafka.LogEvent) {
	go func() {
		for range ch {
		}
	}()
}

func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	b.Run("raw", func(b *testing.B) {
		topic := benchkit.Topic(b, tc)
		kp, err := kafka.NewProducer(rawProducerConfig(brokers))
		if err != nil {
			b.Fatal(err)
		}
		defer kp.Close()
		drainLogs(kp.Logs())
		var a benchkit.Acks
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range kp.Events() {
				if m, ok := ev.(*kafka.Message); ok {
					a.Add(m.TopicPartition.Error)
				}
			}
		}()
		defer func() { kp.Close(); <-done }()
		runtime.GC()
		b.ResetTimer()
		var m benchkit.Measure
		m.Begin()
		for i := 0; i < b.N; i++ {
			// A message with Opaque, as the adapter sends: the binding
			// keeps it for the delivery report.
			err := kp.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
				Value: benchkit.Value, Timestamp: time.Now(), Opaque: &a}, nil)
			for err != nil {
				if ke, ok := err.(kafka.Error); !ok || ke.Code() != kafka.ErrQueueFull {
					b.Fatal(err)
				}
				kp.Flush(10)
				err = kp.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
					Value: benchkit.Value, Timestamp: time.Now(), Opaque: &a}, nil)
			}
		}
		for kp.Flush(1000) > 0 {
		}
		for a.Acked() < int64(b.N) && a.Failed() == 0 {
			runtime.Gosched()
		}
		m.End(b, b.N)
		b.StopTimer()
		a.Check(b, int64(b.N))
	})

	b.Run("polykafka", func(b *testing.B) {
		topic := benchkit.Topic(b, tc)
		ctx := context.Background()
		p, err := producer.New(ctx, confluent.New(polykafka.Connection{Brokers: brokers}, nil), &producer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		var a benchkit.Acks
		cb := func(_ *polykafka.Record, err error) { a.Add(err) }
		runtime.GC()
		b.ResetTimer()
		var m benchkit.Measure
		m.Begin()
		for i := 0; i < b.N; i++ {
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Value: benchkit.Value}, cb)
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		m.End(b, b.N)
		b.StopTimer()
		a.Check(b, int64(b.N))
	})
}

func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	b.Run("raw", func(b *testing.B) {
		topic := benchkit.FillTopic(b, tc, b.N)
		kc, err := kafka.NewConsumer(&kafka.ConfigMap{
			"bootstrap.servers":             brokers[0],
			"group.id":                      tc.Group(b),
			"partition.assignment.strategy": "range",
			"enable.auto.commit":            false,
			"enable.auto.offset.store":      false,
			"auto.offset.reset":             "earliest",
			"go.logs.channel.enable":        true,
		})
		if err != nil {
			b.Fatal(err)
		}
		drainLogs(kc.Logs())
		defer kc.Close()
		if err := kc.SubscribeTopics([]string{topic}, nil); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.ResetTimer()
		var m benchkit.Measure
		var sink int
		count := 0
		deadline := time.Now().Add(5 * time.Minute)
		for count < b.N {
			if time.Now().After(deadline) {
				b.Fatalf("consumed %d of %d records", count, b.N)
			}
			switch e := kc.Poll(100).(type) {
			case *kafka.Message:
				if e.TopicPartition.Error != nil {
					b.Fatal(e.TopicPartition.Error)
				}
				count++
				if count == 1 {
					m.Begin()
				}
				sink += len(e.Value)
			case kafka.Error:
				b.Logf("poll: %v", e)
			}
		}
		m.End(b, b.N)
		b.StopTimer()
		if sink != b.N*benchkit.ValueSize {
			b.Fatalf("consumed %d bytes, want %d", sink, b.N*benchkit.ValueSize)
		}
	})

	backend := confluent.New(polykafka.Connection{Brokers: tc.Brokers()}, nil)
	b.Run("polykafka", func(b *testing.B) { benchkit.PortableConsume(b, backend, tc, false) })
	b.Run("polykafka-batch", func(b *testing.B) { benchkit.PortableConsume(b, backend, tc, true) })
}
