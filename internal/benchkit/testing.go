package benchkit

import (
	"context"
	"testing"
	"time"

	"github.com/polykafka/polykafka/internal/testcluster"
)

// Produce runs produce case c as a go test benchmark of b.N records on a
// fresh topic of tc (deleted when b ends), with s's Linger and Variant,
// and reports records/s, ns/op (per record), allocs/record, B/record and
// cpu-ns/record (process CPU time).
func Produce(b *testing.B, tc *testcluster.Cluster, c Case, s Setup) {
	b.Helper()
	run(b, tc, c, s, false)
}

// Consume runs consume case c as a go test benchmark: b.N records written
// to a fresh topic before the timer, read by a new group; it reports what
// Produce reports.
func Consume(b *testing.B, tc *testcluster.Cluster, c Case, s Setup) {
	b.Helper()
	run(b, tc, c, s, true)
}

func run(b *testing.B, tc *testcluster.Cluster, c Case, s Setup, fill bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topic, err := CreateTopic(ctx, tc, Partitions)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DeleteTopic(ctx, tc, topic); err != nil {
			b.Logf("delete %s: %v", topic, err)
		}
	})
	s.Brokers, s.Topic, s.Group, s.N = tc.Brokers(), topic, tc.Group(b), b.N
	if s.Value == nil {
		s.Value = Value
	}
	if fill {
		if err := Fill(ctx, tc, topic, b.N, s.Value); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	r, err := c(ctx, &s)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.RecordsPerSec(), "records/s")
	b.ReportMetric(float64(r.Elapsed.Nanoseconds())/float64(r.Records), "ns/op")
	b.ReportMetric(r.AllocsPerRecord(), "allocs/record")
	b.ReportMetric(r.BytesPerRecord(), "B/record")
	b.ReportMetric(float64(r.CPUPerRecord().Nanoseconds()), "cpu-ns/record")
}
