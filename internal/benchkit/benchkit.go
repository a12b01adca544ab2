// Package benchkit is what the adapters' benchmarks share: the topic they
// write to or read from, the measured section and its metrics, the
// acknowledgement count of a produce benchmark, and the portable consumer's
// side of a consume benchmark. Each adapter's benchmark file keeps only its
// raw client's side.
//
// Every benchmark reports records/s, ns/op (per record), allocs/record and
// B/record over its measured section (runtime.MemStats deltas: on the
// in-process broker they include the broker's allocations, the same for
// both sides of a comparison).
package benchkit

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// Partitions and ValueSize shape every benchmark topic and record.
const (
	Partitions = 6
	ValueSize  = 100
)

// Value is the value of every benchmark record.
var Value = make([]byte, ValueSize)

// Topic creates a topic of Partitions partitions that is deleted again when
// b ends, so that the in-process broker does not carry earlier variants'
// records (memory, GC work) into later ones.
func Topic(b *testing.B, tc *testcluster.Cluster) string {
	b.Helper()
	topic := tc.Topic(b, Partitions)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := tc.Admin().DeleteTopics(ctx, topic); err != nil {
			b.Logf("delete %s: %v", topic, err)
		}
	})
	return topic
}

// FillTopic creates a Topic holding n records of Value with nil keys,
// written with a plain franz-go client.
func FillTopic(b *testing.B, tc *testcluster.Cluster, n int) string {
	b.Helper()
	topic := Topic(b, tc)
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var acks Acks
	promise := func(_ *kgo.Record, err error) { acks.Add(err) }
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: Value}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	acks.Check(b, int64(n))
	return topic
}

// Measure is one measured section: wall time and MemStats deltas.
type Measure struct {
	start   time.Time
	mallocs uint64
	bytes   uint64
}

// Begin starts the section.
func (m *Measure) Begin() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs, m.bytes = ms.Mallocs, ms.TotalAlloc
	m.start = time.Now()
}

// End reports the section's metrics for n records.
func (m *Measure) End(b *testing.B, n int) {
	elapsed := time.Since(m.start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(ms.Mallocs-m.mallocs)/float64(n), "allocs/record")
	b.ReportMetric(float64(ms.TotalAlloc-m.bytes)/float64(n), "B/record")
}

// Acks counts the acknowledged records of a produce benchmark and keeps the
// failures. One value serves every record: its Add is called from one
// callback made once, never a closure per record, and the success path
// allocates nothing.
type Acks struct {
	ok    atomic.Int64
	mu    sync.Mutex
	nerr  int
	first error
}

// Add counts one delivery.
func (a *Acks) Add(err error) {
	if err == nil {
		a.ok.Add(1)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nerr == 0 {
		a.first = err
	}
	a.nerr++
}

// Acked returns the number of records acknowledged so far.
func (a *Acks) Acked() int64 { return a.ok.Load() }

// Done returns the number of records delivered so far, acknowledged or
// failed.
func (a *Acks) Done() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ok.Load() + int64(a.nerr)
}

// Failed returns the number of records that failed so far.
func (a *Acks) Failed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nerr
}

// Reset forgets what was counted.
func (a *Acks) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ok.Store(0)
	a.nerr, a.first = 0, nil
}

// Check fails b if a record failed or fewer or more than want were
// acknowledged.
func (a *Acks) Check(b *testing.B, want int64) {
	b.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nerr > 0 {
		b.Fatalf("%d records failed, first: %v", a.nerr, a.first)
	}
	if got := a.ok.Load(); got != want {
		b.Fatalf("acked %d records, want %d", got, want)
	}
}

// TimeSends is the measured section of a produce benchmark: b.N calls of
// send, then flush; every record must have been acknowledged.
func TimeSends(b *testing.B, acks *Acks, send func(), flush func() error) {
	b.Helper()
	runtime.GC()
	b.ResetTimer()
	var m Measure
	m.Begin()
	for i := 0; i < b.N; i++ {
		send()
	}
	if err := flush(); err != nil {
		b.Fatal(err)
	}
	m.End(b, b.N)
	b.StopTimer()
	acks.Check(b, int64(b.N))
}

// PortableConsume is the portable consumer's side of a consume benchmark:
// b.N records written to a fresh topic before the timer, read by the only
// member of a new group on backend from the earliest offset with Run (or
// RunBatch), measured from the delivery of the first record to that of the
// last, so that the group join and the start decisions are left out.
func PortableConsume(b *testing.B, backend driver.Backend, tc *testcluster.Cluster, batch bool) {
	topic := FillTopic(b, tc, b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := consumer.New(ctx, backend, tc.Group(b), []string{topic}, &consumer.Options{Initial: discovery.Earliest})
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
	var m Measure
	var sink int
	count := 0
	each := func(r *polykafka.Record) {
		count++
		if count == 1 {
			m.Begin()
		}
		sink += len(r.Value)
		if count == b.N {
			m.End(b, b.N)
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
	if ctx.Err() != nil {
		b.Fatalf("timed out after %d of %d records", count, b.N)
	}
	if count != b.N || sink != b.N*ValueSize {
		b.Fatalf("consumed %d records (%d bytes), want %d", count, sink, b.N)
	}
}
