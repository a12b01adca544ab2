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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

const (
	benchPartitions = 6
	benchValueSize  = 100
)

var benchValue = make([]byte, benchValueSize)

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

func (m *measure) end(b *testing.B, n int) {
	elapsed := time.Since(m.start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(ms.Mallocs-m.mallocs)/float64(n), "allocs/record")
	b.ReportMetric(float64(ms.TotalAlloc-m.bytes)/float64(n), "B/record")
}

type acks struct {
	ok    atomic.Int64
	mu    sync.Mutex
	first error
}

func (a *acks) add(err error) {
	if err == nil {
		a.ok.Add(1)
		return
	}
	a.mu.Lock()
	if a.first == nil {
		a.first = err
	}
	a.mu.Unlock()
}

func (a *acks) check(b *testing.B) {
	b.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.first != nil {
		b.Fatalf("a record failed: %v", a.first)
	}
	if got := a.ok.Load(); got != int64(b.N) {
		b.Fatalf("acked %d records, want %d", got, b.N)
	}
}

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
		topic := benchTopic(b, tc)
		kp, err := kafka.NewProducer(rawProducerConfig(brokers))
		if err != nil {
			b.Fatal(err)
		}
		defer kp.Close()
		drainLogs(kp.Logs())
		var a acks
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range kp.Events() {
				if m, ok := ev.(*kafka.Message); ok {
					a.add(m.TopicPartition.Error)
				}
			}
		}()
		defer func() { kp.Close(); <-done }()
		runtime.GC()
		b.ResetTimer()
		var m measure
		m.begin()
		for i := 0; i < b.N; i++ {
			// A message with Opaque, as the adapter sends: the binding
			// keeps it for the delivery report.
			err := kp.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
				Value: benchValue, Timestamp: time.Now(), Opaque: &a}, nil)
			for err != nil {
				if ke, ok := err.(kafka.Error); !ok || ke.Code() != kafka.ErrQueueFull {
					b.Fatal(err)
				}
				kp.Flush(10)
				err = kp.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
					Value: benchValue, Timestamp: time.Now(), Opaque: &a}, nil)
			}
		}
		for kp.Flush(1000) > 0 {
		}
		for a.ok.Load() < int64(b.N) && a.first == nil {
			runtime.Gosched()
		}
		m.end(b, b.N)
		b.StopTimer()
		a.check(b)
	})

	b.Run("polykafka", func(b *testing.B) {
		topic := benchTopic(b, tc)
		ctx := context.Background()
		p, err := producer.New(ctx, confluent.New(polykafka.Connection{Brokers: brokers}, nil), &producer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		var a acks
		cb := func(_ *polykafka.Record, err error) { a.add(err) }
		runtime.GC()
		b.ResetTimer()
		var m measure
		m.begin()
		for i := 0; i < b.N; i++ {
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Value: benchValue}, cb)
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		m.end(b, b.N)
		b.StopTimer()
		a.check(b)
	})
}

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
	var a acks
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: benchValue}, func(_ *kgo.Record, err error) { a.add(err) })
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if a.first != nil {
		b.Fatal(a.first)
	}
	return topic
}

func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	brokers := tc.Brokers()

	b.Run("raw", func(b *testing.B) {
		topic := fillTopic(b, tc, b.N)
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
		var m measure
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
					m.begin()
				}
				sink += len(e.Value)
			case kafka.Error:
				b.Logf("poll: %v", e)
			}
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
	c, err := consumer.New(ctx, confluent.New(polykafka.Connection{Brokers: tc.Brokers()}, nil), tc.Group(b), []string{topic},
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
	if count != b.N || sink != b.N*benchValueSize {
		b.Fatalf("consumed %d records (%d bytes), want %d", count, sink, b.N)
	}
}
