package polysarama_test

// Benchmarks of the sarama adapter against raw sarama with equivalent
// settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 200000x -count 3 ./adapters/sarama/
//
// b.N is the number of records. The cases are saramabench's, the same as
// the pkbench command's. Every variant reports records/s, ns/op (ns per
// record), allocs/record and B/record (runtime.MemStats deltas over the
// measured section). On the in-process kfake cluster the broker runs in
// the test process, so the allocation figures include the broker's; they
// are the same for both variants, so the difference is the adapter's and
// the portable layer's cost. Set KAFKA_BROKERS to measure against an
// external cluster.

import (
	"testing"

	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/benchkit/saramabench"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// BenchmarkProduce sends b.N records of 100 bytes with nil keys
// asynchronously and waits for every acknowledgement.
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Produce(b, tc, saramabench.RawProduce, benchkit.Setup{}) })
	b.Run("polykafka", func(b *testing.B) { benchkit.Produce(b, tc, saramabench.PolyProduce, benchkit.Setup{}) })
}

// BenchmarkConsume reads b.N records (written before the timer) as the
// only member of a new group from the earliest offset.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Consume(b, tc, saramabench.RawConsume, benchkit.Setup{}) })
	b.Run("polykafka", func(b *testing.B) { benchkit.Consume(b, tc, saramabench.PolyConsume, benchkit.Setup{}) })
}
