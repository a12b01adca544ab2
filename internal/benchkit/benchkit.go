// Package benchkit is what the record-path benchmarks share: the go test
// benchmarks of each adapter (adapters/*/bench_test.go) and the pkbench
// command (internal/cmd/pkbench) run the same cases, written once in the
// per-backend packages below it (franzbench, saramabench, kafkagobench,
// confluentbench): each has a raw client side and a polykafka side with
// equivalent settings.
//
// A case gets a Setup (brokers, a topic, the record count and value) and
// returns a Result over its measured section: wall time and
// runtime.MemStats deltas. On the in-process kfake cluster the deltas
// include the broker's allocations for those records, the same for both
// sides of a comparison; against a broker in another process only the
// clients allocate in-process. librdkafka's C allocations are never
// counted.
package benchkit

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/producer"
)

// Default shape of a benchmark topic and record.
const (
	Partitions = 6
	ValueSize  = 100
)

// Value is the default value of every benchmark record.
var Value = make([]byte, ValueSize)

// Setup is what one case runs with.
type Setup struct {
	// Brokers are the bootstrap addresses.
	Brokers []string
	// Topic is a fresh empty topic for a produce case, and a topic holding
	// at least N records of len(Value) bytes for a consume case.
	Topic string
	// Group is a group id no one used before.
	Group string
	// N is the number of records to produce or consume.
	N int
	// Value is the value of every record (keys are nil).
	Value []byte
	// Linger is the producer linger of both sides (0: none, the portable
	// default).
	Linger time.Duration
	// Variant selects a case's variant where it has more than one (the
	// go test benchmarks' raw+record, polykafka-batch, ...); "" is the
	// plain one, which the pkbench command runs unless -variant says
	// otherwise.
	Variant string
}

// Result is one measured section.
type Result struct {
	Records int
	Bytes   int64 // record bytes (values) moved
	Elapsed time.Duration
	CPU     time.Duration // process CPU time (user+system) in the section
	Mallocs uint64        // heap allocations in the section
	Alloc   uint64        // heap bytes allocated in the section
}

// RecordsPerSec returns the throughput in records.
func (r Result) RecordsPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// MBPerSec returns the throughput in value bytes (10^6 per MB).
func (r Result) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

// AllocsPerRecord returns the heap allocations per record.
func (r Result) AllocsPerRecord() float64 { return float64(r.Mallocs) / float64(r.Records) }

// CPUPerRecord returns the process CPU time per record, which a loaded
// machine inflates far less than the wall time (against a broker in
// another process it is the clients' alone).
func (r Result) CPUPerRecord() time.Duration { return r.CPU / time.Duration(r.Records) }

// BytesPerRecord returns the heap bytes allocated per record.
func (r Result) BytesPerRecord() float64 { return float64(r.Alloc) / float64(r.Records) }

// Case is one side of a comparison.
type Case func(ctx context.Context, s *Setup) (Result, error)

// Pair is a backend's raw client and polykafka cases for produce and
// consume, with equivalent settings.
type Pair struct {
	Backend                 string
	RawProduce, PolyProduce Case
	RawConsume, PolyConsume Case
}

// Measure is one measured section: wall time and MemStats deltas.
type Measure struct {
	start   time.Time
	cpu     time.Duration
	mallocs uint64
	bytes   uint64
}

// Begin starts the section.
func (m *Measure) Begin() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs, m.bytes = ms.Mallocs, ms.TotalAlloc
	m.cpu = cpuTime()
	m.start = time.Now()
}

// End returns the section's result for n records of size bytes each.
func (m *Measure) End(n, size int) Result {
	elapsed := time.Since(m.start)
	cpu := cpuTime() - m.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Result{Records: n, Bytes: int64(n) * int64(size), Elapsed: elapsed, CPU: cpu,
		Mallocs: ms.Mallocs - m.mallocs, Alloc: ms.TotalAlloc - m.bytes}
}

// Acks counts the acknowledged records of a produce case and keeps the
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

// Check returns an error if a record failed or fewer or more than want
// were acknowledged.
func (a *Acks) Check(want int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nerr > 0 {
		return fmt.Errorf("%d records failed, first: %w", a.nerr, a.first)
	}
	if got := a.ok.Load(); got != want {
		return fmt.Errorf("acked %d records, want %d", got, want)
	}
	return nil
}

// Wait waits until n records are delivered (acknowledged or failed) or ctx
// is done, polling every poll.
func (a *Acks) Wait(ctx context.Context, n int64, poll time.Duration) error {
	for a.Done() < n {
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d records delivered: %w", a.Done(), n, ctx.Err())
		}
		time.Sleep(poll)
	}
	return nil
}

// TimeSends is the measured section of a produce case: s.N calls of send,
// then flush; every record must have been acknowledged.
func TimeSends(s *Setup, acks *Acks, send func(), flush func() error) (Result, error) {
	runtime.GC()
	var m Measure
	m.Begin()
	for i := 0; i < s.N; i++ {
		send()
	}
	if err := flush(); err != nil {
		return Result{}, err
	}
	r := m.End(s.N, len(s.Value))
	return r, acks.Check(int64(s.N))
}

// PortableProduce is the polykafka side of a produce case: a producer on
// backend with the portable defaults but s.Linger, loaded with the topic's
// metadata by one synchronous send before the measured section, then s.N
// SendAsync calls and a Flush. Each call gets a new Record, as most
// callers' would; with Variant "reuse" a Record goes back to a sync.Pool
// in its callback (SendAsync's contract lets the caller have it back
// then), which shows what the record path costs without the caller's
// allocation.
func PortableProduce(ctx context.Context, backend driver.Backend, s *Setup) (Result, error) {
	p, err := producer.New(ctx, backend, &producer.Options{Linger: s.Linger})
	if err != nil {
		return Result{}, err
	}
	defer p.Close()
	if err := p.Send(ctx, &polykafka.Record{Topic: s.Topic, Value: s.Value}); err != nil {
		return Result{}, err
	}
	var acks Acks
	if s.Variant == "reuse" {
		var free sync.Pool
		cb := func(r *polykafka.Record, err error) {
			acks.Add(err)
			free.Put(r)
		}
		return TimeSends(s, &acks, func() {
			r, _ := free.Get().(*polykafka.Record)
			if r == nil {
				r = new(polykafka.Record)
			}
			*r = polykafka.Record{Topic: s.Topic, Value: s.Value}
			p.SendAsync(ctx, r, cb)
		}, func() error { return p.Flush(ctx) })
	}
	cb := func(_ *polykafka.Record, err error) { acks.Add(err) }
	return TimeSends(s, &acks, func() {
		p.SendAsync(ctx, &polykafka.Record{Topic: s.Topic, Value: s.Value}, cb)
	}, func() error { return p.Flush(ctx) })
}

// PortableConsume is the polykafka side of a consume case: s.N records
// read by the only member of group s.Group on backend from the earliest
// offset with Run (RunBatch for Variant "batch"), measured from the
// delivery of the first record to that of the last, so that the group
// join and the start decisions are left out.
func PortableConsume(ctx context.Context, backend driver.Backend, s *Setup) (Result, error) {
	c, err := consumer.New(ctx, backend, s.Group, []string{s.Topic}, &consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runtime.GC()
	var m Measure
	var res Result
	var sink int
	count := 0
	each := func(r *polykafka.Record) {
		count++
		if count == 1 {
			m.Begin()
		}
		sink += len(r.Value)
		if count == s.N {
			res = m.End(s.N, len(s.Value))
			stop()
		}
	}
	if s.Variant == "batch" {
		err = c.RunBatch(runCtx, func(_ context.Context, rs []polykafka.Record) error {
			for i := range rs {
				if count < s.N {
					each(&rs[i])
				}
			}
			return nil
		})
	} else {
		err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
			if count < s.N {
				each(&r)
			}
			return nil
		})
	}
	if err != nil {
		return Result{}, err
	}
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("consumed %d of %d records: %w", count, s.N, ctx.Err())
	}
	return res, CheckConsumed(s, count, sink)
}

// CheckConsumed returns an error unless count records of sink value bytes
// in total are what s asked for.
func CheckConsumed(s *Setup, count, sink int) error {
	if count != s.N || sink != s.N*len(s.Value) {
		return fmt.Errorf("consumed %d records (%d bytes), want %d (%d bytes)", count, sink, s.N, s.N*len(s.Value))
	}
	return nil
}
