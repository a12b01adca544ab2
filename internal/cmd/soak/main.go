// Command soak drives one backend through the portable API for a given
// duration on the embedded kfake cluster, under partition growth, member
// churn and network cuts, and prints what it produced, what was
// acknowledged and what the consumer group read, as one markdown table
// row:
//
//	go run ./internal/cmd/soak -backend franz -duration 10m
//	go run ./internal/cmd/soak -backend confluent -duration 10m -log /tmp/soak-confluent.jsonl
//
// A producer (producer.New) sends records at -rate with SendAsync, each
// value a unique sequence id, and counts the callbacks: acknowledged, or
// failed by error code. A consumer group of -members members (consumer.New,
// Run) counts each id it is handed. Meanwhile, each on its own clock so
// that they overlap now and then:
//
//   - every -grow the topic gains a partition (CreatePartitions), up to
//     -max-partitions;
//   - every -churn some members of the group are closed and started again,
//     1, 2, ... -members of them at once in turn;
//   - every -cut-every every connection between the clients and the
//     broker is cut (internal/netcut) for -cut-for.
//
// A member whose Run fails is closed and started again, and the failure is
// counted by error code. After -duration the producer stops and flushes;
// then the program waits up to -drain until every acknowledged id has been
// consumed, closes the group and prints the table: produced,
// acknowledged, failed (by code), consumed (unique ids), lost (acknowledged
// and never consumed), duplicated (deliveries beyond an id's first), the
// process's peak RSS (VmHWM) and peak goroutine count, both of which
// include the embedded broker. A progress line goes to stderr every
// -progress.
//
// The exit status is 1 when a record was lost, when a callback ran twice or
// never, or when the run could not be set up; for lost records it first
// prints each one (up to 20): its partition and offset, when it was
// acknowledged, the events around then, whether the broker's log holds it
// and the group's committed offset of its partition.
//
// Flags:
//
//	-backend         franz, sarama, kafkago or confluent (cgo builds); required
//	-duration        how long to produce (default 1m)
//	-rate            records per second (default 200)
//	-partitions      partitions of the topic at the start (default 3)
//	-max-partitions  partitions the topic grows to at most (default 24)
//	-members         members of the consumer group (default 3)
//	-grow            period of partition growth; 0 disables (default 40s)
//	-churn           period of member churn; 0 disables (default 25s)
//	-cut-every       period of network cuts; 0 disables (default 55s)
//	-cut-for         length of a cut (default 3s)
//	-drain           bound of the wait for the last acknowledged ids (default 3m)
//	-progress        period of the progress lines (default 30s)
//	-log             file for the clients' logs (JSON); empty discards
//	-log-level       their level: debug, info, warn or error (default info)
//
// The soak is not part of go test's default run; its smoke test
// (TestSoakSmoke) runs it for a few seconds on franz.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"
)

// config is the program's flags.
type config struct {
	backend                       string
	duration                      time.Duration
	rate                          int
	partitions, maxPartitions     int
	members                       int
	grow, churn, cutEvery, cutFor time.Duration
	drain, progress               time.Duration
	logFile                       string
	logLevel                      slog.Level
}

func main() {
	var c config
	flag.StringVar(&c.backend, "backend", "", "backend: "+strings.Join(backendNames(), ", "))
	flag.DurationVar(&c.duration, "duration", time.Minute, "how long to produce")
	flag.IntVar(&c.rate, "rate", 200, "records per second")
	flag.IntVar(&c.partitions, "partitions", 3, "partitions of the topic at the start")
	flag.IntVar(&c.maxPartitions, "max-partitions", 24, "partitions the topic grows to at most")
	flag.IntVar(&c.members, "members", 3, "members of the consumer group")
	flag.DurationVar(&c.grow, "grow", 40*time.Second, "period of partition growth (0 disables)")
	flag.DurationVar(&c.churn, "churn", 25*time.Second, "period of member churn (0 disables)")
	flag.DurationVar(&c.cutEvery, "cut-every", 55*time.Second, "period of network cuts (0 disables)")
	flag.DurationVar(&c.cutFor, "cut-for", 3*time.Second, "length of a network cut")
	flag.DurationVar(&c.drain, "drain", 3*time.Minute, "bound of the wait for the last acknowledged ids to be consumed")
	flag.DurationVar(&c.progress, "progress", 30*time.Second, "period of the progress lines")
	flag.StringVar(&c.logFile, "log", "", "file for the clients' logs (JSON); empty discards")
	flag.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "level of the clients' logs: debug, info, warn or error")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, c, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if rep.failedRun() {
		os.Exit(1)
	}
}

func (c *config) validate() error {
	if _, ok := backends[c.backend]; !ok {
		return fmt.Errorf("-backend %q: unknown backend (available: %s)", c.backend, strings.Join(backendNames(), ", "))
	}
	switch {
	case c.duration <= 0:
		return fmt.Errorf("-duration %v: must be positive", c.duration)
	case c.rate <= 0:
		return fmt.Errorf("-rate %d: must be positive", c.rate)
	case c.partitions <= 0:
		return fmt.Errorf("-partitions %d: must be positive", c.partitions)
	case c.maxPartitions < c.partitions:
		return fmt.Errorf("-max-partitions %d: below -partitions %d", c.maxPartitions, c.partitions)
	case c.members <= 0:
		return fmt.Errorf("-members %d: must be positive", c.members)
	case c.grow < 0, c.churn < 0, c.cutEvery < 0:
		return fmt.Errorf("-grow %v, -churn %v, -cut-every %v: periods must not be negative", c.grow, c.churn, c.cutEvery)
	case c.cutEvery > 0 && (c.cutFor <= 0 || c.cutFor >= c.cutEvery):
		return fmt.Errorf("-cut-for %v: must be positive and shorter than -cut-every %v", c.cutFor, c.cutEvery)
	case c.drain <= 0:
		return fmt.Errorf("-drain %v: must be positive", c.drain)
	case c.progress <= 0:
		return fmt.Errorf("-progress %v: must be positive", c.progress)
	}
	return nil
}

func backendNames() []string {
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// logTo opens the clients' log file, or discards.
func logTo(path string) (io.Writer, func(), error) {
	if path == "" {
		return io.Discard, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("-log: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}
