package consumer_test

// Benchmarks of Options.Concurrency and Ordering, on the franz backend:
//
//	go test -run '^$' -bench 'Concurrent(Slow|Noop)' -benchtime 1x ./consumer/
//
// BenchmarkConcurrentSlow reads 10,000 records (12 partitions, 10,000
// distinct keys) with a handler that sleeps uniformly 0-5 ms, per mode and
// Concurrency; BenchmarkConcurrentNoop reads b.N records with a handler
// that does nothing (run it with -benchtime 200000x). Both measure from the
// first record handled to the last, so that the group join and the start
// decisions are left out, and report records/s; BenchmarkConcurrentNoop
// also reports the CPU time of the process per record (the in-process
// broker's included, the same for every mode), steadier than records/s on
// a shared machine.
//
// BenchmarkConcurrentRSS reports the peak RSS of the consumer under a slow
// handler on a large backlog. The broker must run in another process
// (internal/cmd/kfakebroker), or the backlog it keeps counts in this one:
//
//	go run ./internal/cmd/kfakebroker -brokers 1 &
//	KAFKA_BROKERS=127.0.0.1:9092 POLYKAFKA_RSS_MB=1024 go test -run '^$' -bench ConcurrentRSS -benchtime 1x ./consumer/

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
)

const benchPartitions = 12

// fillKeyed creates a topic of benchPartitions partitions holding n records
// of size-byte values with distinct keys, spread round-robin.
func fillKeyed(b *testing.B, tc *testcluster.Cluster, n, size int) string {
	b.Helper()
	topic := tc.Topic(b, benchPartitions)
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(10_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	value := make([]byte, size)
	var failed atomic.Int64
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: int32(i % benchPartitions), Key: []byte("key-" + strconv.Itoa(i)), Value: value}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d records not written", f, n)
	}
	return topic
}

// consumeN reads n records of topic with a new group and handler h under
// opts, and returns the time from the first record handled to the n-th,
// and the CPU time the process (broker included) used meanwhile.
func consumeN(b *testing.B, tc *testcluster.Cluster, topic string, n int, opts consumer.Options, h func()) (time.Duration, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts.Initial = discovery.Earliest
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: tc.Brokers()}), tc.Group(b), []string{topic}, &opts)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var count atomic.Int64
	var start time.Time
	var elapsed, cpu0, cpu time.Duration
	var first sync.Once // handlers run on several goroutines: one of them starts the clock
	err = c.Run(runCtx, func(context.Context, polykafka.Record) error {
		if count.Load() == 0 {
			first.Do(func() { start, cpu0 = time.Now(), processCPU() })
		}
		h()
		if count.Add(1) == int64(n) {
			elapsed, cpu = time.Since(start), processCPU()-cpu0
			stop()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if count.Load() < int64(n) {
		b.Fatalf("consumed %d of %d records", count.Load(), n)
	}
	return elapsed, cpu
}

type benchMode struct {
	name        string
	ordering    consumer.Ordering
	concurrency int
	buffered    int // MaxBufferedRecords; 0: the default
}

func benchModes(concurrency []int) []benchMode {
	modes := []benchMode{{name: "serial"}}
	for _, o := range []consumer.Ordering{consumer.ByPartition, consumer.ByKey, consumer.Unordered} {
		for _, n := range concurrency {
			modes = append(modes, benchMode{name: fmt.Sprintf("%s/%d", o, n), ordering: o, concurrency: n})
		}
	}
	return modes
}

func BenchmarkConcurrentSlow(b *testing.B) {
	const n = 10_000
	tc := testcluster.New(b)
	topic := fillKeyed(b, tc, n, 100)
	concurrency := []int{1, 12, 64, 256}
	if s := os.Getenv("POLYKAFKA_BENCH_CONCURRENCY"); s != "" {
		concurrency = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			concurrency = append(concurrency, v)
		}
	}
	// ByPartition with a buffer that holds every partition's backlog: the
	// default buffer (4000) fills with the partitions fetched first.
	modes := append(benchModes(concurrency), benchMode{"ByPartition/12/buffer10000", consumer.ByPartition, 12, n})
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			for range b.N {
				opts := consumer.Options{Concurrency: m.concurrency, Ordering: m.ordering, MaxBufferedRecords: m.buffered}
				d, _ := consumeN(b, tc, topic, n, opts, func() {
					time.Sleep(rand.N(5 * time.Millisecond))
				})
				b.ReportMetric(float64(n)/d.Seconds(), "records/s")
				b.ReportMetric(d.Seconds(), "s/10k")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

func BenchmarkConcurrentNoop(b *testing.B) {
	tc := testcluster.New(b)
	var topic string
	filled := 0
	for _, m := range benchModes([]int{12, 64, 256}) {
		b.Run(m.name, func(b *testing.B) {
			if filled < b.N {
				topic, filled = fillKeyed(b, tc, b.N, 100), b.N
			}
			runtime.GC()
			b.ResetTimer()
			d, cpu := consumeN(b, tc, topic, b.N, consumer.Options{Concurrency: m.concurrency, Ordering: m.ordering}, func() {})
			b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
		})
	}
}

// BenchmarkConcurrentRSS fills a topic with POLYKAFKA_RSS_MB megabytes of
// 10 KB records (1024 by default), then reads it for 20 s with ByKey at
// Concurrency 64 and a handler sleeping 50 ms (far slower than the
// backlog can be fetched), and reports the peak RSS of
// the process during the read (VmHWM, reset after the fill), the records
// read, and the Go heap in use at the end.
func BenchmarkConcurrentRSS(b *testing.B) {
	if !testcluster.External() {
		b.Skip("needs a broker in another process (KAFKA_BROKERS): the in-process broker's backlog would count in the RSS")
	}
	mb := 1024
	if s := os.Getenv("POLYKAFKA_RSS_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	const size = 10 << 10
	tc := testcluster.New(b)
	topic := fillKeyed(b, tc, mb<<20/size, size)
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
	before := rss(b, "VmRSS")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: tc.Brokers()}), tc.Group(b), []string{topic},
		&consumer.Options{Initial: discovery.Earliest, Concurrency: 64, Ordering: consumer.ByKey})
	if err != nil {
		b.Fatal(err)
	}
	var count atomic.Int64
	_ = c.Run(ctx, func(context.Context, polykafka.Record) error {
		time.Sleep(50 * time.Millisecond)
		count.Add(1)
		return nil
	})
	peak := rss(b, "VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_ = c.Close()
	b.ReportMetric(float64(mb), "backlog-MB")
	b.ReportMetric(float64(before)/1024, "rss-before-MB")
	b.ReportMetric(float64(peak)/1024, "peak-rss-MB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	b.ReportMetric(float64(count.Load()), "records-read")
	b.ReportMetric(0, "ns/op")
}

// rss returns a /proc/self/status field in kB.
func rss(b *testing.B, field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
