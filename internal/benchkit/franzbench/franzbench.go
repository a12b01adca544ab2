// Package franzbench is the franz backend's benchmark pair: raw franz-go
// and the franz adapter with equivalent settings, for the adapter's go
// test benchmarks and the pkbench command.
package franzbench

import (
	"context"
	"fmt"
	"runtime"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/internal/benchkit"
)

// Pair is the franz backend's cases.
var Pair = benchkit.Pair{
	Backend:     "franz",
	RawProduce:  RawProduce,
	PolyProduce: PolyProduce,
	RawConsume:  RawConsume,
	PolyConsume: PolyConsume,
}

// RecordSink keeps the "record" variant's extra record on the heap (a
// store the compiler cannot drop).
var RecordSink *polykafka.Record

// RawProduce sends s.N records asynchronously with a plain kgo client set
// up like the adapter's producer with the portable defaults (acks=all,
// idempotent, linger s.Linger, no compression, kgo's
// UniformBytesPartitioner) and flushes, measuring from the first send to
// the end of the flush. The client's metadata for the topic is loaded by
// one synchronous send before. Variant "record" also allocates (and
// discards) one polykafka.Record per send: it isolates what the record
// representation costs from what the adapter and the portable layer cost.
func RawProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),                // kgo's default, idempotent by default
		kgo.ProducerLinger(s.Linger),                      // kgo's default is 10ms
		kgo.ProducerBatchCompression(kgo.NoCompression()), // kgo's default is snappy
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, true, true, nil)),
	)
	if err != nil {
		return benchkit.Result{}, err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: s.Topic, Value: s.Value}).FirstErr(); err != nil {
		return benchkit.Result{}, err
	}
	record := s.Variant == "record"
	var acks benchkit.Acks
	promise := func(_ *kgo.Record, err error) { acks.Add(err) }
	return benchkit.TimeSends(s, &acks, func() {
		if record {
			RecordSink = &polykafka.Record{Topic: s.Topic, Value: s.Value}
		}
		cl.Produce(ctx, &kgo.Record{Topic: s.Topic, Value: s.Value}, promise)
	}, func() error { return cl.Flush(ctx) })
}

// PolyProduce is RawProduce through the franz adapter: portable defaults
// (acks all, idempotent, no compression) and s.Linger.
func PolyProduce(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableProduce(ctx, franz.New(polykafka.Connection{Brokers: s.Brokers}), s)
}

// RawConsume reads s.N records as the only member of group s.Group, from
// the earliest offset, 1000 records per poll, measured from the first
// record to the last so that the group join is left out. Equivalent
// settings: the same eager range balancer as the adapter, and reset to the
// start. For commits, kgo's default autocommit (every 5s) is the closest
// equivalent of polykafka's default CommitPeriodic (every 5s, processed
// offsets); the adapter itself disables kgo's autocommit because the
// portable layer commits.
func RawConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.Brokers...),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeTopics(s.Topic),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return benchkit.Result{}, err
	}
	defer cl.Close()
	runtime.GC()
	var m benchkit.Measure
	var res benchkit.Result
	var sink int
	count := 0
	each := func(r *kgo.Record) {
		if count == s.N {
			return
		}
		count++
		if count == 1 {
			m.Begin()
		}
		sink += len(r.Value)
		if count == s.N {
			res = m.End(s.N, len(s.Value))
		}
	}
	var ferr error
	for count < s.N {
		fs := cl.PollRecords(ctx, 1000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return benchkit.Result{}, fmt.Errorf("poll stopped after %d of %d records: %v", count, s.N, ctx.Err())
		}
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
		if ferr != nil {
			return benchkit.Result{}, ferr
		}
		fs.EachRecord(each)
	}
	return res, benchkit.CheckConsumed(s, count, sink)
}

// PolyConsume is RawConsume through the franz adapter and the portable
// consumer's Run (RunBatch for Variant "batch"): Run's handler gets each
// record by value from a reused buffer.
func PolyConsume(ctx context.Context, s *benchkit.Setup) (benchkit.Result, error) {
	return benchkit.PortableConsume(ctx, franz.New(polykafka.Connection{Brokers: s.Brokers}), s)
}
