//go:build cgo

// Package confluentbench is the confluent backend's benchmark pair: raw
// confluent-kafka-go and the confluent adapter with equivalent settings,
// for the adapter's go test benchmarks and the pkbench command. Without
// cgo, Pair has no cases (Available is false).
package confluentbench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/internal/benchkit"
)

// Available reports whether the confluent cases exist: only with cgo.
const Available = true

// Pair is the confluent backend's cases.
var Pair = benchkit.Pair{
	Backend:     "confluent",
	RawProduce:  RawProduce,
	PolyProduce: PolyProduce,
	RawConsume:  RawConsume,
	PolyConsume: PolyConsume,
}

// rawProducerConfig is what the adapter sets for producer.Options' zero
// value but Linger: acks=all, idempotence (IdempotenceAuto), no
// compression, the murmur2 partitioner, no key or value copies in
// delivery reports.
func rawProducerConfig(brokers []string, linger time.Duration) *kafka.ConfigMap {
	return &kafka.ConfigMap{
		"bootstrap.servers":         strings.Join(brokers, ","), // as the adapter
		"acks":                      -1,
		"enable.idempotence":        true,
		"compression.type":          "none",
		"linger.ms":                 int(linger.Milliseconds()),
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

// RawProduce sends s.N records with kafka.Producer.Produce (a message with
// a timestamp and an Opaque, as the adapter sends; on a full queue it
// flushes 10 ms and retries), reading delivery reports from Events, and
// waits for every acknowledgement. One record is sent and acknowledged
// before the measured section, to load metadata.
func RawProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	kp, err := kafka.NewProducer(rawProducerConfig(s.Brokers, s.Linger))
	if err != nil {
		return benchkit.Result{}, err
	}
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
	topic := s.Topic
	produce := func() error {
		err := kp.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Value: s.Value, Timestamp: time.Now(), Opaque: &a}, nil)
		for err != nil {
			if ke, ok := err.(kafka.Error); !ok || ke.Code() != kafka.ErrQueueFull {
				return err
			}
			kp.Flush(10)
			err = kp.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
				Value: s.Value, Timestamp: time.Now(), Opaque: &a}, nil)
		}
		return nil
	}
	if err := produce(); err != nil {
		return benchkit.Result{}, err
	}
	if err := a.Wait(ctx, 1, time.Millisecond); err != nil {
		return benchkit.Result{}, err
	}
	if err := a.Check(1); err != nil {
		return benchkit.Result{}, err
	}
	a.Reset()
	var perr error
	return benchkit.TimeSends(s, &a, func() {
		if err := produce(); err != nil && perr == nil {
			perr = err
		}
	}, func() error {
		if perr != nil {
			return perr
		}
		for kp.Flush(1000) > 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return a.Wait(ctx, int64(s.N), 50*time.Microsecond)
	})
}

// PolyProduce is RawProduce through the confluent adapter with the
// portable defaults and s.Linger.
func PolyProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableProduce(ctx, confluent.New(polykafka.Connection{Brokers: s.Brokers}, nil), s)
}

// RawConsume reads s.N records with a kafka.Consumer (range assignment,
// earliest, no auto commit: the adapter's settings) polled 100 ms at a
// time, measured from the first record to the last.
func RawConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	kc, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":             strings.Join(s.Brokers, ","), // as the adapter
		"group.id":                      s.Group,
		"partition.assignment.strategy": "range",
		"enable.auto.commit":            false,
		"enable.auto.offset.store":      false,
		"auto.offset.reset":             "earliest",
		"go.logs.channel.enable":        true,
	})
	if err != nil {
		return benchkit.Result{}, err
	}
	drainLogs(kc.Logs())
	defer kc.Close()
	if err := kc.SubscribeTopics([]string{s.Topic}, nil); err != nil {
		return benchkit.Result{}, err
	}
	runtime.GC()
	var m benchkit.Measure
	var sink int
	count := 0
	for count < s.N {
		if ctx.Err() != nil {
			return benchkit.Result{}, fmt.Errorf("consumed %d of %d records: %w", count, s.N, ctx.Err())
		}
		switch e := kc.Poll(100).(type) {
		case *kafka.Message:
			if e.TopicPartition.Error != nil {
				return benchkit.Result{}, e.TopicPartition.Error
			}
			count++
			if count == 1 {
				m.Begin()
			}
			sink += len(e.Value)
		case kafka.Error:
			if e.IsFatal() {
				return benchkit.Result{}, e
			}
		}
	}
	res := m.End(s.N, len(s.Value))
	return res, benchkit.CheckConsumed(s, count, sink)
}

// PolyConsume is RawConsume through the confluent adapter and the
// portable consumer's Run (RunBatch for Variant "batch").
func PolyConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableConsume(ctx, confluent.New(polykafka.Connection{Brokers: s.Brokers}, nil), s)
}
