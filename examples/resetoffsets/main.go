// Command resetoffsets moves a consumer group's positions, as
// kafka-consumer-groups.sh --reset-offsets does, through polykafka's
// portable admin API (package admin) on any backend: it prints the plan as
// a table and applies it unless -dry-run is given. It refuses while the
// group has active members, and keeps the baseline metadata that polykafka
// consumers record, so the start-offset guarantee still holds afterwards.
//
// Flags:
//
//	-brokers     comma-separated bootstrap brokers; empty starts an embedded
//	             cluster (kfake, in this process) with a demo topic and group
//	-backend     franz, sarama, kafkago or confluent (confluent needs cgo;
//	             without it the backend fails with code Unimplemented)
//	-group       the consumer group (required with -brokers)
//	-topic       the topic (required with -brokers)
//	-partitions  which partitions: a comma list ("0,3"), "all", or empty for
//	             every partition that has no position (the partitions the
//	             group never committed, such as ones added while it was
//	             stopped)
//	-to          earliest, latest, an RFC 3339 time or an offset
//	-dry-run     print the plan only
//
// On a bare machine:
//
//	go run ./examples/resetoffsets -dry-run
//	go run ./examples/resetoffsets -to latest -partitions all
//	go run ./examples/resetoffsets -brokers localhost:9092 -group billing -topic orders -to 2026-12-01T00:00:00Z -dry-run
//
// The embedded demo: topic demo-orders had 2 partitions when group
// demo-billing read it (positions 15 and 12, baseline 2); it has since grown
// to 4, and partitions 2 and 3 have no position. The default scope resets
// exactly those two, to earliest, with baseline 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/admin"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
)

const (
	demoTopic = "demo-orders"
	demoGroup = "demo-billing"
)

// config is the program's flags.
type config struct {
	brokers, backend, group, topic, partitions, to string
	dryRun                                         bool
}

func main() {
	var c config
	flag.StringVar(&c.brokers, "brokers", "", "comma-separated bootstrap brokers; empty starts an embedded cluster with a demo topic and group")
	flag.StringVar(&c.backend, "backend", "franz", "polykafka backend: franz, sarama, kafkago, confluent (needs cgo)")
	flag.StringVar(&c.group, "group", "", "consumer group (default "+demoGroup+" on the embedded cluster)")
	flag.StringVar(&c.topic, "topic", "", "topic (default "+demoTopic+" on the embedded cluster)")
	flag.StringVar(&c.partitions, "partitions", "", `partitions: a comma list, "all", or empty for every partition without a position`)
	flag.StringVar(&c.to, "to", "earliest", "target: earliest, latest, an RFC 3339 time, or an offset")
	flag.BoolVar(&c.dryRun, "dry-run", false, "print the plan without applying it")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "resetoffsets:", err)
		os.Exit(1)
	}
}

// newBackend selects the polykafka backend by name.
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
	return nil, fmt.Errorf("-backend %q: unknown (available: franz, sarama, kafkago, confluent)", name)
}

// parsePartitions parses -partitions for topic.
func parsePartitions(s, topic string) (*admin.PlanOptions, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return &admin.PlanOptions{}, nil
	case "all":
		return &admin.PlanOptions{All: true}, nil
	}
	var o admin.PlanOptions
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-partitions %q: %q is not a partition number", s, f)
		}
		o.Partitions = append(o.Partitions, polykafka.TopicPartition{Topic: topic, Partition: int32(n)})
	}
	return &o, nil
}

func run(ctx context.Context, out io.Writer, c config) error {
	target, err := admin.ParseTarget(c.to)
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	seeds := strings.Split(c.brokers, ",")
	if c.brokers == "" {
		if c.group == "" {
			c.group = demoGroup
		}
		if c.topic == "" {
			c.topic = demoTopic
		}
	} else if c.group == "" || c.topic == "" {
		return errors.New("-group and -topic are required with -brokers")
	}
	opts, err := parsePartitions(c.partitions, c.topic)
	if err != nil {
		return err
	}
	if _, err := newBackend(c.backend, seeds); err != nil {
		return err
	}
	if c.brokers == "" {
		cluster, err := testcluster.Start()
		if err != nil {
			return err
		}
		defer cluster.Close()
		seeds = cluster.Brokers()
		if err := seedDemo(ctx, out, cluster, c.group, c.topic); err != nil {
			return fmt.Errorf("seeding the demo: %w", err)
		}
	}
	b, _ := newBackend(c.backend, seeds)

	plan, err := admin.Plan(ctx, b, c.group, []string{c.topic}, target, opts)
	if err != nil {
		return err
	}
	if _, err := plan.WriteTo(out); err != nil {
		return err
	}
	switch {
	case len(plan.Rows) == 0:
		fmt.Fprintln(out, "nothing to reset")
		return nil
	case c.dryRun:
		fmt.Fprintln(out, "dry run: nothing committed")
		return nil
	}
	if err := plan.Apply(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "applied: %d positions committed for group %q\n", len(plan.Rows), c.group)
	return nil
}

// seedDemo creates topic with 2 partitions of 20 records, commits the
// group's positions there (15 and 12, with baseline 2, as a polykafka
// consumer records them), then grows the topic to 4 partitions and writes
// 5 records to each new one.
func seedDemo(ctx context.Context, out io.Writer, cluster *testcluster.Cluster, group, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cluster.CreateTopic(ctx, topic, 2); err != nil {
		return err
	}
	// A producer of its own, created after each change of the topic, so
	// that its metadata shows every partition it writes to.
	produce := func(parts []int32, n int) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		defer cl.Close()
		var rs []*kgo.Record
		for _, p := range parts {
			for i := range n {
				rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strconv.Itoa(i))})
			}
		}
		return cl.ProduceSync(ctx, rs...).FirstErr()
	}
	if err := produce([]int32{0, 1}, 20); err != nil {
		return err
	}
	adm := cluster.Admin()
	var os kadm.Offsets
	for p, at := range map[int32]int64{0: 15, 1: 12} {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1, Metadata: offsetstore.EncodeMetadata(2)})
	}
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit the group's positions: %w", err)
	}
	up, err := adm.UpdatePartitions(ctx, 4, topic)
	if err == nil {
		err = up.Error()
	}
	if err != nil {
		return fmt.Errorf("grow %s: %w", topic, err)
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil && len(md.Topics[topic].Partitions) == 4 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not show 4 partitions: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := produce([]int32{2, 3}, 5); err != nil {
		return err
	}
	fmt.Fprintf(out, "embedded cluster: group %q read %s at 2 partitions (positions 15 and 12, baseline 2); it grew to 4, partitions 2 and 3 have no position\n\n", group, topic)
	return nil
}
