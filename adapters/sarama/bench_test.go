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

	"github.com/polykafka/polykafka"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

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
		topic := benchkit.Topic(b, tc)
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
		var acks benchkit.Acks
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
					acks.Add(nil)
				case pe, ok := <-errs:
					if !ok {
						errs = nil
						continue
					}
					acks.Add(pe.Err)
				}
			}
		}()
		ap.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(benchkit.Value)}
		for acks.Acked() < 1 {
			time.Sleep(time.Millisecond)
		}
		acks.Reset()

		runtime.GC()
		b.ResetTimer()
		var m benchkit.Measure
		m.Begin()
		for i := 0; i < b.N; i++ {
			ap.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(benchkit.Value)}
		}
		for acks.Done() < int64(b.N) {
			time.Sleep(100 * time.Microsecond)
		}
		m.End(b, b.N)
		b.StopTimer()
		acks.Check(b, int64(b.N))
		ap.AsyncClose()
		<-done
	})

	b.Run("polykafka", func(b *testing.B) {
		topic := benchkit.Topic(b, tc)
		ctx := context.Background()
		p, err := producer.New(ctx, polysarama.New(polykafka.Connection{Brokers: tc.Brokers()}, nil), &producer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: benchkit.Value}); err != nil {
			b.Fatal(err)
		}
		var acks benchkit.Acks
		cb := func(_ *polykafka.Record, err error) { acks.Add(err) }

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
		acks.Check(b, int64(b.N))
	})
}

// rawHandler counts the messages of a raw sarama consumer group and marks
// them, as a plain sarama application does (auto-commit every second, the
// closest equivalent of polykafka's periodic commit).
type rawHandler struct {
	n     int
	count atomic.Int64
	m     *benchkit.Measure
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
			h.first.Do(h.m.Begin)
			sess.MarkMessage(msg, "")
			if h.count.Add(1) == int64(h.n) {
				h.once.Do(func() {
					h.m.End(h.b, h.n)
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
		topic := benchkit.FillTopic(b, tc, b.N)
		cfg := rawConfig()
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cg, err := sarama.NewConsumerGroup(tc.Brokers(), tc.Group(b), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer cg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		h := &rawHandler{n: b.N, m: &benchkit.Measure{}, b: b, done: make(chan struct{})}
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

	b.Run("polykafka", func(b *testing.B) {
		benchkit.PortableConsume(b, polysarama.New(polykafka.Connection{Brokers: tc.Brokers()}, nil), tc, false)
	})
}
