//go:build cgo

package confluent_test

// Benchmarks of the confluent adapter against raw confluent-kafka-go with
// equivalent settings, side by side on the same cluster in one run:
//
//	go test -run '^$' -bench . -benchtime 200000x -count 3 ./adapters/confluent/
//
// b.N is the number of records. The cases are confluentbench's, the same
// as the pkbench command's. Every variant reports records/s, ns/op
// (per record), allocs/record and B/record (runtime.MemStats deltas over
// the measured section, which on the in-process kfake cluster include the
// broker's allocations, the same for both variants: the difference is the
// adapter's and the portable layer's cost). librdkafka's own (C)
// allocations are not counted.

import (
	"testing"

	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/benchkit/confluentbench"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// BenchmarkProduce sends b.N records of 100 bytes with nil keys and waits
// for every delivery report (confluentbench.RawProduce and PolyProduce).
func BenchmarkProduce(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Produce(b, tc, confluentbench.RawProduce, benchkit.Setup{}) })
	b.Run("polykafka", func(b *testing.B) { benchkit.Produce(b, tc, confluentbench.PolyProduce, benchkit.Setup{}) })
}

// BenchmarkConsume reads b.N records (written before the timer) as the
// only member of a new group from the earliest offset, with Run and
// RunBatch.
func BenchmarkConsume(b *testing.B) {
	tc := testcluster.New(b)
	b.Run("raw", func(b *testing.B) { benchkit.Consume(b, tc, confluentbench.RawConsume, benchkit.Setup{}) })
	b.Run("polykafka", func(b *testing.B) { benchkit.Consume(b, tc, confluentbench.PolyConsume, benchkit.Setup{}) })
	b.Run("polykafka-batch", func(b *testing.B) {
		benchkit.Consume(b, tc, confluentbench.PolyConsume, benchkit.Setup{Variant: "batch"})
	})
}
