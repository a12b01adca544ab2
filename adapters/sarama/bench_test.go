package polysarama_test

// Benchmarks of the sarama adapter against raw sarama with equivalent
// settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 200000x -count 3 ./adapters/sarama/
//
// b.N is the number of records. Every variant reports records/s, ns/op (ns
// per record), allocs/record and B/record (runtime.MemStats deltas over the
// measured section). On the in-process kfake cluster the broker runs in the
// test process, so the allocation figures include the broker's; they are
// the same for both variants, so the difference is the adapter's and the
// portable layer's cost. Set KAFKA_BROKERS to measure against an external
// cluster.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
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

// benchTopic creates a 6-partition topic that is deleted again when b ends.
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

func (m *measure) end(b *testing.B, n int) {
	elapsed := time.Since(m.start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(ms.Mallocs-m.mallocs)/float64(n), "allocs/record")
	b.ReportMetric(float64(ms.TotalAlloc-m.bytes)/float64(n), "B/record")
}

// ackCount counts acknowledged records and keeps the first error.
type ackCount struct {
	acks  atomic.Int64
	mu    sync.Mutex
	nerr  int
	first error
}

func (a *ackCount) add(err error) {
	if err != nil {
		a.mu.Lock()
		if a.nerr == 0 {
			a.first = err
		}
		a.nerr++
		a.mu.Unlock()
		return
	}
	a.acks.Add(1)
}

// total is the number of records acknowledged or failed.
func (a *ackCount) total() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acks.Load() + int64(a.nerr)
}

func (a *ackCount) check(b *testing.B) {
	b.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nerr > 0 {
		b.Fatalf("%d records failed, first: %v", a.nerr, a.first)
	}
	if got := a.acks.Load(); got != int64(b.N) {
		b.Fatalf("acked %d records, want %d", got, b.N)
	}
}

// rawConfig is sarama set up like the adapter with the portable defaults.
func rawConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = polysarama.DefaultVersion
	return cfg
}

// BenchmarkProduce sends b.N records of 100 bytes with nil keys
// asynchronously and waits for every acknowledgement. Both variants use
// acks=all, idempotence (so Net.MaxOpenRequests=1), no linger, no
// compression and sarama's murmur2 partitioner.
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)

	b.Run("raw", func(b *testing.B) {
		topic := benchTopic(b, tc)
		cfg := rawConfig()
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Return.Successes = true
		cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
		ap, err := sarama.NewAsyncProducer(tc.Brokers(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		var acks ackCount
		done := make(chan struct{})
		go func() {
			defer close(done)
			succ, errs := ap.Successes(), ap.Errors()
			for succ != nil || errs != nil {
				select {
				case _, ok := <-succ:
					if !ok {
						succ = nil
						continue
					}
					acks.add(nil)
				case pe, ok := <-errs:
					if !ok {
						errs = nil
						continue
					}
					acks.add(pe.Err)
				}
			}
		}()
		ap.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(benchValue)}
		for acks.acks.Load() < 1 {
			time.Sleep(time.Millisecond)
		}
		acks.acks.Store(0)

		runtime.GC()
		b.ResetTimer()
		var m measure
		m.begin()
		for i := 0; i < b.N; i++ {
			ap.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(benchValue)}
		}
		for acks.total() < int64(b.N) {
			time.Sleep(100 * time.Microsecond)
		}
		m.end(b, b.N)
		b.StopTimer()
		acks.check(b)
		ap.AsyncClose()
		<-done
	})

	b.Run("polykafka", func(b *testing.B) {
		topic := benchTopic(b, tc)
		ctx := context.Background()
		p, err := producer.New(ctx, polysarama.New(polykafka.Connection{Brokers: tc.Brokers()}, nil), &producer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: benchValue}); err != nil {
			b.Fatal(err)
		}
		var acks ackCount
		cb := func(_ *polykafka.Record, err error) { acks.add(err) }

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
		acks.check(b)
	})
}

// fillTopic creates a 6-partition topic holding n records of 100 bytes.
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
	var acks ackCount
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: benchValue}, func(_ *kgo.Record, err error) { acks.add(err) })
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if acks.total() != int64(n) || acks.nerr > 0 {
		b.Fatalf("filled %d of %d records: %v", acks.acks.Load(), n, acks.first)
	}
	return topic
}

// rawHandler counts the messages of a raw sarama consumer group and marks
// them, as a plain sarama application does (auto-commit every second, the
// closest equivalent of polykafka's periodic commit).
type rawHandler struct {
	n     int
	count atomic.Int64
	m     *measure
	b     *testing.B
	done  chan struct{}
	once  sync.Once
	first sync.Once
}

func (*rawHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*rawHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *rawHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.first.Do(h.m.begin)
			sess.MarkMessage(msg, "")
			if h.count.Add(1) == int64(h.n) {
				h.once.Do(func() {
					h.m.end(h.b, h.n)
					close(h.done)
				})
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// BenchmarkConsume reads b.N records (written before the timer) as the
// only member of a new group from the earliest offset, measured from the
// first record to the last, so that joining is left out for both.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)

	b.Run("raw", func(b *testing.B) {
		topic := fillTopic(b, tc, b.N)
		cfg := rawConfig()
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cg, err := sarama.NewConsumerGroup(tc.Brokers(), tc.Group(b), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer cg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		h := &rawHandler{n: b.N, m: &measure{}, b: b, done: make(chan struct{})}
		runtime.GC()
		b.ResetTimer()
		go func() {
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		}()
		select {
		case <-h.done:
		case <-ctx.Done():
			b.Fatalf("timed out after %d of %d records", h.count.Load(), b.N)
		}
		b.StopTimer()
		cancel()
	})

	b.Run("polykafka", func(b *testing.B) { benchPortableConsume(b, tc) })
}

func benchPortableConsume(b *testing.B, tc *testcluster.Cluster) {
	{
		topic := fillTopic(b, tc, b.N)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c, err := consumer.New(ctx, polysarama.New(polykafka.Connection{Brokers: tc.Brokers()}, nil), tc.Group(b), []string{topic},
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
		count := 0
		err = c.Run(runCtx, func(_ context.Context, _ polykafka.Record) error {
			count++
			if count == 1 {
				m.begin()
			}
			if count == b.N {
				m.end(b, b.N)
				stop()
			}
			return nil
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if count != b.N {
			b.Fatalf("consumed %d records, want %d", count, b.N)
		}
	}
}
