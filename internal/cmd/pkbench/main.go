// Command pkbench runs every backend's produce and consume record paths,
// raw client and polykafka side by side with equivalent settings,
// interleaved and repeated, and prints one markdown table of the medians:
//
//	go run ./internal/cmd/pkbench                       # embedded kfake broker
//	go run ./internal/cmd/kfakebroker &                 # or a broker in another process
//	go run ./internal/cmd/pkbench -brokers 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
//
// The cases are internal/benchkit's per-backend pairs, the same as the
// adapters' go test benchmarks. confluent runs only in a cgo build.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/benchkit/confluentbench"
	"github.com/polykafka/polykafka/internal/benchkit/franzbench"
	"github.com/polykafka/polykafka/internal/benchkit/kafkagobench"
	"github.com/polykafka/polykafka/internal/benchkit/saramabench"
	"github.com/polykafka/polykafka/internal/testcluster"
)

var pairs = []benchkit.Pair{franzbench.Pair, saramabench.Pair, kafkagobench.Pair, confluentbench.Pair}

type config struct {
	brokers    string
	records    int
	size       int
	partitions int
	rounds     int
	linger     time.Duration
	settle     time.Duration
	backends   string
	paths      string
	sides      string
	variant    string
	cpuProfile string
	memProfile string
}

func main() {
	var c config
	flag.StringVar(&c.brokers, "brokers", "", "comma-separated bootstrap brokers of an external cluster (default: start an embedded kfake cluster)")
	flag.IntVar(&c.records, "records", 200_000, "records per case")
	flag.IntVar(&c.size, "size", benchkit.ValueSize, "value bytes per record (keys are nil)")
	flag.IntVar(&c.partitions, "partitions", benchkit.Partitions, "partitions of every topic")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds: every case runs once per round, interleaved; the table shows medians")
	flag.DurationVar(&c.linger, "linger", 0, "producer linger of both sides")
	flag.DurationVar(&c.settle, "settle", time.Second, "pause before each case, so that the previous case's clients finish closing (whichever side ran first paid for them)")
	flag.StringVar(&c.backends, "backends", "franz,sarama,kafka-go,confluent", "backends to run")
	flag.StringVar(&c.paths, "paths", "produce,consume", "record paths to run")
	flag.StringVar(&c.sides, "sides", "raw,polykafka", "sides to run (one side only: for profiling)")
	flag.StringVar(&c.variant, "variant", "", "case variant of the go test benchmarks (kafka-go: unbounded, record; franz: record; consume: batch; produce: reuse, the polykafka side reusing its Records after their callbacks); the table's default is none")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&c.memProfile, "memprofile", "", "write an allocation profile (one sample per 4 KiB allocated) to this file")
	flag.Parse()
	if err := run(context.Background(), &c, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pkbench:", err)
		os.Exit(1)
	}
}

// row is one line of the table: the results of one case over the rounds.
type row struct {
	backend, path, side string
	results             []benchkit.Result
	note                string
}

func run(ctx context.Context, c *config, out, log io.Writer) error {
	switch {
	case c.records <= 0:
		return fmt.Errorf("-records: %d is not positive", c.records)
	case c.size < 0:
		return fmt.Errorf("-size: %d is negative", c.size)
	case c.partitions <= 0:
		return fmt.Errorf("-partitions: %d is not positive", c.partitions)
	case c.rounds <= 0:
		return fmt.Errorf("-rounds: %d is not positive", c.rounds)
	case c.linger < 0:
		return fmt.Errorf("-linger: %v is negative", c.linger)
	case c.settle < 0:
		return fmt.Errorf("-settle: %v is negative", c.settle)
	}
	backends := strings.Split(c.backends, ",")
	for _, b := range backends {
		if !slices.ContainsFunc(pairs, func(p benchkit.Pair) bool { return p.Backend == b }) {
			return fmt.Errorf("-backends: unknown backend %q", b)
		}
	}
	paths := strings.Split(c.paths, ",")
	for _, p := range paths {
		if p != "produce" && p != "consume" {
			return fmt.Errorf("-paths: unknown path %q (want produce or consume)", p)
		}
	}
	sides := strings.Split(c.sides, ",")
	for _, s := range sides {
		if s != "raw" && s != "polykafka" {
			return fmt.Errorf("-sides: unknown side %q (want raw or polykafka)", s)
		}
	}
	if c.memProfile != "" {
		runtime.MemProfileRate = 4096 // sampled: every allocation would slow the run and change its batching
	}

	var brokers []string
	if c.brokers != "" {
		brokers = strings.Split(c.brokers, ",")
	}
	tc, err := testcluster.StartOn(brokers)
	if err != nil {
		return err
	}
	defer tc.Close()

	value := make([]byte, c.size)
	var consumeTopic string
	if slices.Contains(paths, "consume") {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		consumeTopic, err = benchkit.CreateTopic(ctx, tc, int32(c.partitions))
		if err == nil {
			err = benchkit.Fill(ctx, tc, consumeTopic, c.records, value)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("fill the consume topic: %w", err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = benchkit.DeleteTopic(ctx, tc, consumeTopic)
		}()
	}

	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	var rows []*row
	find := func(backend, path, side string) *row {
		for _, r := range rows {
			if r.backend == backend && r.path == path && r.side == side {
				return r
			}
		}
		r := &row{backend: backend, path: path, side: side}
		rows = append(rows, r)
		return r
	}
	for round := 0; round < c.rounds; round++ {
		for _, p := range pairs {
			if !slices.Contains(backends, p.Backend) {
				continue
			}
			for _, path := range paths {
				cases := []struct {
					side string
					c    benchkit.Case
				}{{"raw", p.RawProduce}, {"polykafka", p.PolyProduce}}
				if path == "consume" {
					cases[0].c, cases[1].c = p.RawConsume, p.PolyConsume
				}
				if round%2 == 1 { // alternate which side runs first
					cases[0], cases[1] = cases[1], cases[0]
				}
				for _, cs := range cases {
					if !slices.Contains(sides, cs.side) {
						continue
					}
					r := find(p.Backend, path, cs.side)
					if cs.c == nil {
						r.note = "not built: needs cgo (CGO_ENABLED=1 and a C compiler)"
						continue
					}
					runtime.GC()
					time.Sleep(c.settle)
					res, err := runCase(ctx, tc, cs.c, path, consumeTopic, value, c)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", p.Backend, path, cs.side, err)
					}
					fmt.Fprintf(log, "round %d: %-9s %-7s %-9s %10.0f records/s %6.2f allocs/record %7.1f B/record %6.2f CPU µs/record\n",
						round+1, p.Backend, path, cs.side, res.RecordsPerSec(), res.AllocsPerRecord(), res.BytesPerRecord(), cpuMicros(res))
					r.results = append(r.results, res)
				}
			}
		}
	}
	if c.memProfile != "" {
		f, err := os.Create(c.memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		// The profile shows allocations as of the last completed GC cycle:
		// two cycles publish everything up to now.
		runtime.GC()
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	where := "embedded kfake (in this process)"
	if c.brokers != "" {
		where = "external (" + c.brokers + ")"
	}
	return writeTable(out, c, where, rows)
}

// runCase runs one case on a fresh produce topic (deleted afterwards) or on
// the shared consume topic with a new group.
func runCase(ctx context.Context, tc *testcluster.Cluster, cs benchkit.Case, path, consumeTopic string, value []byte, c *config) (benchkit.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	s := &benchkit.Setup{Brokers: tc.Brokers(), Group: benchkit.Name("g"), N: c.records, Value: value, Linger: c.linger, Topic: consumeTopic, Variant: c.variant}
	if path == "produce" {
		topic, err := benchkit.CreateTopic(ctx, tc, int32(c.partitions))
		if err != nil {
			return benchkit.Result{}, err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = benchkit.DeleteTopic(ctx, tc, topic)
		}()
		s.Topic = topic
	}
	return cs(ctx, s)
}

func median(rs []benchkit.Result, f func(benchkit.Result) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// pairedRatio is the median over the rounds of each round's records/s
// ratio: the two sides of a round run back to back, so a load that comes
// and goes cancels out better than in a ratio of medians.
func pairedRatio(poly, raw []benchkit.Result) float64 {
	ratios := make([]float64, len(poly))
	for i := range poly {
		ratios[i] = poly[i].RecordsPerSec() / raw[i].RecordsPerSec()
	}
	slices.Sort(ratios)
	if len(ratios)%2 == 1 {
		return ratios[len(ratios)/2]
	}
	return (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
}

func writeTable(out io.Writer, c *config, where string, rows []*row) error {
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "%d records of %d B (nil keys), %d partitions, linger %v, median of %d interleaved rounds (ratio: median of the rounds' ratios); broker: %s; %s, GOMAXPROCS %d, %d CPUs (%s)\n\n",
		c.records, c.size, c.partitions, c.linger, c.rounds, where, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), cpuModel())
	fmt.Fprintln(w, "| backend | path | client | records/s | MB/s | allocs/record | B/record | CPU µs/record | ratio to raw |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		if len(r.results) == 0 {
			fmt.Fprintf(w, "| %s | %s | %s | — | — | — | — | — | %s |\n", r.backend, r.path, r.side, r.note)
			continue
		}
		rps := median(r.results, benchkit.Result.RecordsPerSec)
		ratio := "1.00×"
		if r.side != "raw" {
			ratio = "—"
			for _, raw := range rows {
				if raw.backend == r.backend && raw.path == r.path && raw.side == "raw" && len(raw.results) == len(r.results) {
					ratio = fmt.Sprintf("%.2f×", pairedRatio(r.results, raw.results))
				}
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f | %.2f | %.0f | %.2f | %s |\n", r.backend, r.path, r.side,
			human(rps), median(r.results, benchkit.Result.MBPerSec),
			median(r.results, benchkit.Result.AllocsPerRecord), median(r.results, benchkit.Result.BytesPerRecord),
			median(r.results, cpuMicros), ratio)
	}
	return w.Flush()
}

func cpuMicros(r benchkit.Result) float64 { return float64(r.CPUPerRecord().Nanoseconds()) / 1e3 }

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// cpuModel returns the CPU model from /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
