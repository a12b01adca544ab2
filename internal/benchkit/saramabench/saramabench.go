// Package saramabench is the sarama backend's benchmark pair: raw sarama
// and the sarama adapter with equivalent settings, for the adapter's go
// test benchmarks and the pkbench command.
package saramabench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/polykafka/polykafka"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/internal/benchkit"
)

// Pair is the sarama backend's cases.
var Pair = benchkit.Pair{
	Backend:     "sarama",
	RawProduce:  RawProduce,
	PolyProduce: PolyProduce,
	RawConsume:  RawConsume,
	PolyConsume: PolyConsume,
}

// rawConfig is sarama set up like the adapter with the portable defaults.
func rawConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = polysarama.DefaultVersion
	return cfg
}

// RawProduce sends s.N records asynchronously with a sarama AsyncProducer
// and waits for every acknowledgement: acks=all, idempotence (so
// Net.MaxOpenRequests=1), Flush.Frequency s.Linger, no compression and
// sarama's murmur2 partitioner, as the adapter sets them. One record is
// sent and acknowledged before the measured section, to load metadata.
func RawProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	cfg := rawConfig()
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.Flush.Frequency = s.Linger
	ap, err := sarama.NewAsyncProducer(s.Brokers, cfg)
	if err != nil {
		return benchkit.Result{}, err
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
	defer func() {
		ap.AsyncClose()
		<-done
	}()
	ap.Input() <- &sarama.ProducerMessage{Topic: s.Topic, Value: sarama.ByteEncoder(s.Value)}
	if err := acks.Wait(ctx, 1, time.Millisecond); err != nil {
		return benchkit.Result{}, err
	}
	if err := acks.Check(1); err != nil {
		return benchkit.Result{}, err
	}
	acks.Reset()
	return benchkit.TimeSends(s, &acks, func() {
		ap.Input() <- &sarama.ProducerMessage{Topic: s.Topic, Value: sarama.ByteEncoder(s.Value)}
	}, func() error { return acks.Wait(ctx, int64(s.N), 100*time.Microsecond) })
}

// PolyProduce is RawProduce through the sarama adapter with the portable
// defaults and s.Linger.
func PolyProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableProduce(ctx, polysarama.New(polykafka.Connection{Brokers: s.Brokers}, nil), s)
}

// rawHandler counts the messages of a raw sarama consumer group and marks
// them, as a plain sarama application does (auto-commit every second, the
// closest equivalent of polykafka's periodic commit).
type rawHandler struct {
	n     int
	size  int
	count atomic.Int64
	m     benchkit.Measure
	res   benchkit.Result
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
					h.res = h.m.End(h.n, h.size)
					close(h.done)
				})
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// RawConsume reads s.N records with a sarama ConsumerGroup as the only
// member of group s.Group from the oldest offset, measured from the first
// record to the last, so that joining is left out.
func RawConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	cfg := rawConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cg, err := sarama.NewConsumerGroup(s.Brokers, s.Group, cfg)
	if err != nil {
		return benchkit.Result{}, err
	}
	defer cg.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &rawHandler{n: s.N, size: len(s.Value), done: make(chan struct{})}
	runtime.GC()
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{s.Topic}, h); err != nil && ctx.Err() == nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case <-h.done:
		return h.res, nil
	case err := <-errc:
		return benchkit.Result{}, err
	case <-ctx.Done():
		return benchkit.Result{}, fmt.Errorf("consumed %d of %d records: %w", h.count.Load(), s.N, ctx.Err())
	}
}

// PolyConsume is RawConsume through the sarama adapter and the portable
// consumer's Run.
func PolyConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableConsume(ctx, polysarama.New(polykafka.Connection{Brokers: s.Brokers}, nil), s)
}
