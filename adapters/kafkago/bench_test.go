package kafkago_test

// Benchmarks of the kafkago adapter against raw kafka-go with equivalent
// settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 200000x -count 3 ./adapters/kafkago/
//
// b.N is the number of records. The cases are kafkagobench's, the same as
// the pkbench command's. Every variant reports records/s, ns/op (ns per
// record), allocs/record and B/record over the measured section. On the
// in-process kfake cluster (the default) the broker runs in the test
// process, so allocs/record and B/record include the broker's allocations
// for those records too; they are the same for both variants, so the
// difference polykafka - raw is the adapter's (and the portable layer's)
// cost. Set KAFKA_BROKERS to measure against an external cluster.

import (
	"testing"
	"time"

	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/benchkit/kafkagobench"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// BenchmarkProduce sends b.N records of 100 bytes with nil keys
// asynchronously and waits for every acknowledgement, at the portable
// default Linger 0 and at 5 ms (batches fill, which isolates the
// per-record cost). raw+record is raw with the polykafka.Record a user of
// the portable API builds for each send, discarded; polykafka-unbounded is
// the adapter without its MaxBufferedRecords bound, as the raw Writer.
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	for _, lg := range []struct {
		name   string
		linger time.Duration
	}{{"linger0", 0}, {"linger5ms", 5 * time.Millisecond}} {
		for _, v := range []struct {
			name, variant string
			c             benchkit.Case
		}{
			{"raw", "", kafkagobench.RawProduce},
			{"raw+record", "record", kafkagobench.RawProduce},
			{"polykafka", "", kafkagobench.PolyProduce},
			{"polykafka-unbounded", "unbounded", kafkagobench.PolyProduce},
		} {
			b.Run(lg.name+"/"+v.name, func(b *testing.B) {
				benchkit.Produce(b, tc, v.c, benchkit.Setup{Linger: lg.linger, Variant: v.variant})
			})
		}
	}
}

// BenchmarkConsume reads b.N records (100-byte values, nil keys, written to
// a fresh 6-partition topic before the timer) as the only member of a new
// consumer group, from the earliest offset, with Run and RunBatch.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Consume(b, tc, kafkagobench.RawConsume, benchkit.Setup{}) })
	b.Run("polykafka", func(b *testing.B) { benchkit.Consume(b, tc, kafkagobench.PolyConsume, benchkit.Setup{}) })
	b.Run("polykafka-batch", func(b *testing.B) {
		benchkit.Consume(b, tc, kafkagobench.PolyConsume, benchkit.Setup{Variant: "batch"})
	})
}
