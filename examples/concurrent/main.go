// Command concurrent compares the consumer's processing modes side by side
// on a handler that waits on simulated I/O (a database write, an API call):
// the serial default, then Options.Concurrency with each Ordering.
//
// It writes -records keyed records (distinct keys) to a topic of
// -partitions partitions, then, for each mode, a new consumer group reads
// them all with a handler that sleeps uniformly between 0 and -latency.
// It prints the throughput every second while a mode runs, and a summary
// table at the end. Every mode commits only over each partition's
// contiguous processed prefix, so every mode is as safe as the serial one.
//
// With no -brokers flag it starts an embedded Kafka cluster (kfake, three
// brokers in this process), so it runs on a bare machine:
//
//	go run ./examples/concurrent
//	go run ./examples/concurrent -records 20000 -concurrency 256
//	go run ./examples/concurrent -brokers localhost:9092 -backend sarama
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
)

// config is the demo's flags.
type config struct {
	brokers     string
	backend     string
	records     int
	partitions  int
	latency     time.Duration
	concurrency int
	modes       string
}

// mode is one way of running the handler.
type mode struct {
	name string
	opts consumer.Options
}

// parseModes turns -modes into the modes to run, naming a bad entry.
func parseModes(s string, concurrency int) ([]mode, error) {
	var out []mode
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "serial":
			out = append(out, mode{"serial", consumer.Options{}})
		case "ByPartition":
			out = append(out, mode{"ByPartition", consumer.Options{Concurrency: concurrency, Ordering: consumer.ByPartition}})
		case "ByKey":
			out = append(out, mode{"ByKey", consumer.Options{Concurrency: concurrency, Ordering: consumer.ByKey}})
		case "Unordered":
			out = append(out, mode{"Unordered", consumer.Options{Concurrency: concurrency, Ordering: consumer.Unordered}})
		default:
			return nil, fmt.Errorf("-modes: unknown mode %q (available: serial, ByPartition, ByKey, Unordered)", f)
		}
	}
	return out, nil
}

// check validates the numeric flags, naming the one that is wrong.
func (c config) check() error {
	switch {
	case c.records < 1:
		return fmt.Errorf("-records %d: must be positive", c.records)
	case c.partitions < 1 || c.partitions > 1000:
		return fmt.Errorf("-partitions %d: must be between 1 and 1000", c.partitions)
	case c.latency < 0:
		return fmt.Errorf("-latency %v: must not be negative", c.latency)
	case c.concurrency < 1:
		return fmt.Errorf("-concurrency %d: must be positive", c.concurrency)
	}
	return nil
}

func main() {
	var cfg config
	flag.StringVar(&cfg.brokers, "brokers", "", "comma-separated bootstrap brokers; empty starts an embedded cluster")
	flag.StringVar(&cfg.backend, "backend", "franz", "polykafka backend: franz, kafkago, sarama, confluent (needs cgo)")
	flag.IntVar(&cfg.records, "records", 5000, "records to write and read per mode")
	flag.IntVar(&cfg.partitions, "partitions", 12, "partitions of the topic")
	flag.DurationVar(&cfg.latency, "latency", 5*time.Millisecond, "the handler's simulated I/O: a uniform wait between 0 and this")
	flag.IntVar(&cfg.concurrency, "concurrency", 64, "Options.Concurrency of the concurrent modes")
	flag.StringVar(&cfg.modes, "modes", "serial,ByPartition,ByKey,Unordered", "modes to run, in order")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "concurrent:", err)
		os.Exit(1)
	}
}

// newBackend selects the polykafka backend by name: the one line an
// application changes to switch clients.
func newBackend(name string, seeds []string) (driver.Backend, error) {
	switch name {
	case "franz":
		return franz.New(polykafka.Connection{Brokers: seeds}), nil
	case "kafkago":
		return kafkago.New(polykafka.Connection{Brokers: seeds}, nil), nil
	case "sarama":
		return polysarama.New(polykafka.Connection{Brokers: seeds}, nil), nil
	case "confluent":
		return confluent.New(polykafka.Connection{Brokers: seeds}, nil), nil
	}
	return nil, fmt.Errorf("-backend: unknown backend %q (available: franz, kafkago, sarama, confluent)", name)
}

// result is one mode's outcome.
type result struct {
	mode    string
	records int64
	elapsed time.Duration
}

// run runs the demo, printing to out.
func run(ctx context.Context, out io.Writer, cfg config) error {
	if err := cfg.check(); err != nil {
		return err
	}
	modes, err := parseModes(cfg.modes, cfg.concurrency)
	if err != nil {
		return err
	}
	seeds := strings.Split(cfg.brokers, ",")
	if cfg.brokers == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
		if err != nil {
			return fmt.Errorf("start embedded cluster: %w", err)
		}
		defer cluster.Close()
		seeds = cluster.ListenAddrs()
		fmt.Fprintf(out, "embedded Kafka cluster (kfake, 3 brokers) at %s\n", strings.Join(seeds, ","))
	}
	b, err := newBackend(cfg.backend, seeds)
	if err != nil {
		return err
	}

	topic, err := fill(ctx, seeds, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "topic %s: %d records, %d partitions, distinct keys; handler waits 0-%v\n", topic, cfg.records, cfg.partitions, cfg.latency)

	var results []result
	for _, m := range modes {
		r, err := runMode(ctx, out, b, topic, m, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tconcurrency\trecords\tseconds\trecords/s\tvs serial\t")
	var serial float64
	for _, r := range results {
		rate := float64(r.records) / r.elapsed.Seconds()
		if r.mode == "serial" {
			serial = rate
		}
		vs := "-"
		if serial > 0 {
			vs = fmt.Sprintf("%.1fx", rate/serial)
		}
		conc := strconv.Itoa(cfg.concurrency)
		if r.mode == "serial" {
			conc = "1"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.0f\t%s\t\n", r.mode, conc, r.records, r.elapsed.Seconds(), rate, vs)
	}
	return tw.Flush()
}

// fill creates the topic and writes the records with a neutral franz-go
// client, independent of the backend under test.
func fill(ctx context.Context, seeds []string, cfg config) (string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	topic := fmt.Sprintf("concurrent-%d", time.Now().UnixNano())
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(cfg.partitions), -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return "", fmt.Errorf("create topic %s: %w", topic, err)
	}
	var failed atomic.Int64
	for i := range cfg.records {
		r := &kgo.Record{Topic: topic, Partition: int32(i % cfg.partitions), Key: []byte("order-" + strconv.Itoa(i)), Value: []byte("payload")}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return "", err
	}
	if n := failed.Load(); n > 0 {
		return "", fmt.Errorf("%d of %d records not written", n, cfg.records)
	}
	return topic, nil
}

// runMode reads every record of topic with a new group in mode m, printing
// the throughput every second.
func runMode(ctx context.Context, out io.Writer, b driver.Backend, topic string, m mode, cfg config) (result, error) {
	opts := m.opts
	opts.Initial = discovery.Earliest
	c, err := consumer.New(ctx, b, fmt.Sprintf("concurrent-%s-%d", m.name, time.Now().UnixNano()), []string{topic}, &opts)
	if err != nil {
		return result{}, err
	}
	defer c.Close()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var done atomic.Int64
	var started atomic.Int64 // unix nanos of the first record
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			n := done.Load()
			fmt.Fprintf(out, "  %-12s %6d/%d records  %7d records/s\n", m.name, n, cfg.records, n-last)
			last = n
		}
	}()
	var finished time.Time
	err = c.Run(runCtx, func(ctx context.Context, r polykafka.Record) error {
		started.CompareAndSwap(0, time.Now().UnixNano())
		// Simulated I/O: wait as a database or an API call would.
		if cfg.latency > 0 {
			t := time.NewTimer(rand.N(cfg.latency + 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if done.Add(1) == int64(cfg.records) {
			finished = time.Now()
			stop()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return result{}, err
	}
	n := done.Load()
	if n < int64(cfg.records) {
		return result{}, fmt.Errorf("interrupted after %d of %d records", n, cfg.records)
	}
	elapsed := finished.Sub(time.Unix(0, started.Load()))
	fmt.Fprintf(out, "%s: %d records in %.2fs (%.0f records/s)\n", m.name, n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	return result{mode: m.name, records: n, elapsed: elapsed}, nil
}
