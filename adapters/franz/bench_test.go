package franz_test

// Benchmarks of the franz adapter against raw franz-go with equivalent
// settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 1000000x -count 3 ./adapters/franz/
//
// b.N is the number of records. Every variant reports
//
//   - records/s: records over the measured section's wall time;
//   - ns/op: the same, as ns per record (overrides the timer's ns/op);
//   - allocs/record and B/record: runtime.MemStats deltas over the measured
//     section divided by the records.
//
// On the in-process kfake cluster (the default, see internal/testcluster)
// the broker runs in the test process, so allocs/record and B/record
// include the broker's allocations for those records as well. They are the
// same for both variants of a benchmark, so the difference polykafka - raw
// is the adapter's (and the portable layer's) cost; the absolute numbers
// are not the client's alone. Set KAFKA_BROKERS to measure against an
// external cluster, where only the clients allocate in-process.

import (
	"testing"

	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/benchkit/franzbench"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// BenchmarkProduce sends b.N records of 100 bytes with nil keys
// asynchronously and flushes (franzbench.RawProduce and PolyProduce: the
// same cases as the pkbench command). raw+record is raw with the
// polykafka.Record a user of the portable API builds for each send,
// discarded.
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Produce(b, tc, franzbench.RawProduce, benchkit.Setup{}) })
	b.Run("raw+record", func(b *testing.B) {
		benchkit.Produce(b, tc, franzbench.RawProduce, benchkit.Setup{Variant: "record"})
	})
	b.Run("polykafka", func(b *testing.B) { benchkit.Produce(b, tc, franzbench.PolyProduce, benchkit.Setup{}) })
}

// BenchmarkConsume reads b.N records (100-byte values, nil keys, written to
// a fresh 6-partition topic before the timer) as the only member of a new
// consumer group, from the earliest offset (franzbench.RawConsume and
// PolyConsume), with Run and with RunBatch.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Consume(b, tc, franzbench.RawConsume, benchkit.Setup{}) })
	b.Run("polykafka", func(b *testing.B) { benchkit.Consume(b, tc, franzbench.PolyConsume, benchkit.Setup{}) })
	b.Run("polykafka-batch", func(b *testing.B) {
		benchkit.Consume(b, tc, franzbench.PolyConsume, benchkit.Setup{Variant: "batch"})
	})
}
