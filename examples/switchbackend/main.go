// Command switchbackend shows that the backend of a polykafka application
// is a choice made in one place: the consumer group and the producer below
// are the same code on franz-go, sarama, kafka-go and (in cgo builds)
// confluent-kafka-go, and a live group can move from one to another.
//
// Flags (the backend may also come from $POLYKAFKA_BACKEND):
//
//	-brokers  comma-separated bootstrap brokers; empty starts an embedded
//	          cluster (kfake, in this process)
//	-backend  franz, sarama, kafkago or confluent (cgo builds)
//	-topic    the topic (default: a fresh demo topic on the embedded cluster;
//	          required with -brokers)
//	-group    the consumer group (default: switchbackend-demo)
//	-migrate  a,b: run a group of two members on backend a under steady
//	          production, replace its members one at a time by members on
//	          backend b (adding a partition between the two replacements on
//	          the embedded cluster), and print what was lost and duplicated
//
// On a bare machine:
//
//	go run ./examples/switchbackend
//	POLYKAFKA_BACKEND=kafkago go run ./examples/switchbackend
//	go run ./examples/switchbackend -migrate sarama,franz
//	go run ./examples/switchbackend -brokers localhost:9092 -topic orders -group billing -migrate kafkago,franz
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// config is the program's flags.
type config struct {
	brokers, backend, topic, group, migrate string
}

func main() {
	var c config
	flag.StringVar(&c.brokers, "brokers", "", "comma-separated bootstrap brokers; empty starts an embedded cluster")
	flag.StringVar(&c.backend, "backend", os.Getenv("POLYKAFKA_BACKEND"), "backend: "+strings.Join(backendNames(), ", ")+" (default $POLYKAFKA_BACKEND, else franz)")
	flag.StringVar(&c.topic, "topic", "", "topic (required with -brokers)")
	flag.StringVar(&c.group, "group", "switchbackend-demo", "consumer group")
	flag.StringVar(&c.migrate, "migrate", "", "a,b: move a live group from backend a to backend b and print losses and duplicates")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "switchbackend:", err)
		os.Exit(1)
	}
}

// backends maps a backend name to its constructor; backend_cgo.go adds
// confluent in cgo builds. This is the only place where the program
// depends on a client.
var backends = map[string]func(brokers []string) driver.Backend{
	"franz": func(brokers []string) driver.Backend { return franz.New(polykafka.Connection{Brokers: brokers}) },
	"sarama": func(brokers []string) driver.Backend {
		return polysarama.New(polykafka.Connection{Brokers: brokers}, nil)
	},
	"kafkago": func(brokers []string) driver.Backend {
		return kafkago.New(polykafka.Connection{Brokers: brokers}, nil)
	},
}

func backendNames() []string {
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newBackend(flagName, name string, brokers []string) (driver.Backend, error) {
	open, ok := backends[name]
	if !ok {
		return nil, fmt.Errorf("%s %q: unknown backend (available: %s)", flagName, name, strings.Join(backendNames(), ", "))
	}
	return open(brokers), nil
}

func run(ctx context.Context, out io.Writer, c config) error {
	if c.backend == "" {
		c.backend = "franz"
	}
	var from, to string
	if c.migrate != "" {
		var ok bool
		from, to, ok = strings.Cut(c.migrate, ",")
		if !ok || from == "" || to == "" || strings.Contains(to, ",") {
			return fmt.Errorf("-migrate %q: want two backends, as in -migrate sarama,franz", c.migrate)
		}
		for _, n := range []string{from, to} {
			if _, err := newBackend("-migrate", n, nil); err != nil {
				return err
			}
		}
	} else if _, err := newBackend("-backend", c.backend, nil); err != nil {
		return err
	}
	if c.group == "" {
		return errors.New("-group: empty")
	}

	var brokers []string
	embedded := c.brokers == ""
	var cl *testcluster.Cluster
	if embedded {
		var err error
		if cl, err = testcluster.Start(); err != nil {
			return fmt.Errorf("starting the embedded cluster: %w", err)
		}
		defer cl.Close()
		brokers = cl.Brokers()
		if c.topic == "" {
			c.topic = fmt.Sprintf("switchbackend-%d", time.Now().UnixNano())
			if err := cl.CreateTopic(ctx, c.topic, 2); err != nil {
				return fmt.Errorf("creating %s: %w", c.topic, err)
			}
		}
	} else {
		if c.topic == "" {
			return errors.New("-topic is required with -brokers")
		}
		brokers = strings.Split(c.brokers, ",")
	}
	if c.migrate == "" {
		return demo(ctx, out, brokers, c)
	}
	var grow func(context.Context) error
	if embedded {
		grow = func(ctx context.Context) error { return growByOne(ctx, cl, c.topic) }
	}
	return migrate(ctx, out, brokers, c, from, to, grow)
}

// demo produces 20 keyed records and reads them back with a group, on one
// backend.
func demo(ctx context.Context, out io.Writer, brokers []string, c config) error {
	b, _ := newBackend("-backend", c.backend, brokers)
	p, err := producer.New(ctx, b, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	var sent []string
	for i := range 20 {
		v := fmt.Sprintf("order-%d", i)
		r := &polykafka.Record{Topic: c.topic, Key: []byte(v), Value: []byte(v)}
		if err := p.Send(ctx, r); err != nil {
			return err
		}
		sent = append(sent, v)
	}
	t := newTally()
	m, err := startMember(ctx, brokers, c.backend, c, t)
	if err != nil {
		return err
	}
	defer m.stop()
	if err := t.await(ctx, sent, time.Minute); err != nil {
		return err
	}
	lost, dups := t.count(sent)
	fmt.Fprintf(out, "backend %s: sent %d, consumed %d, lost %d, duplicates %d\n", c.backend, len(sent), len(sent)-len(lost), len(lost), dups)
	return nil
}

// tally counts deliveries by value.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func newTally() *tally { return &tally{n: make(map[string]int)} }

func (t *tally) handle(_ context.Context, r polykafka.Record) error {
	t.mu.Lock()
	t.n[string(r.Value)]++
	t.mu.Unlock()
	return nil
}

// count returns the values of sent never delivered and the deliveries
// beyond the first of each.
func (t *tally) count(sent []string) (lost []string, dups int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range sent {
		if t.n[v] == 0 {
			lost = append(lost, v)
		}
	}
	for _, k := range t.n {
		dups += max(k-1, 0)
	}
	return lost, dups
}

// await waits until every value of sent was delivered, or d passed.
func (t *tally) await(ctx context.Context, sent []string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if lost, _ := t.count(sent); len(lost) == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// member is one running consumer of the group.
type member struct {
	backend string
	c       *consumer.Consumer
	cancel  context.CancelFunc
	done    chan error
}

func startMember(ctx context.Context, brokers []string, backend string, c config, t *tally) (*member, error) {
	b, err := newBackend("-backend", backend, brokers)
	if err != nil {
		return nil, err
	}
	cons, err := consumer.New(ctx, b, c.group, []string{c.topic}, &consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		return nil, fmt.Errorf("%s member: %w", backend, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	m := &member{backend: backend, c: cons, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- cons.Run(rctx, t.handle) }()
	return m, nil
}

// stop ends Run and closes the member: it commits what it processed and
// leaves the group.
func (m *member) stop() {
	m.cancel()
	<-m.done
	_ = m.c.Close()
}

// awaitOwned waits until the members own every partition of topic between
// them, each exactly once.
func awaitOwned(ctx context.Context, topic string, n int32, ms ...*member) error {
	deadline := time.Now().Add(time.Minute)
	for {
		seen := make(map[int32]int)
		for _, m := range ms {
			for _, tp := range m.c.Assignment() {
				if tp.Topic == topic {
					seen[tp.Partition]++
				}
			}
		}
		ok := int32(len(seen)) == n
		for _, k := range seen {
			ok = ok && k == 1
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the members did not come to own the %d partitions of %s within a minute", n, topic)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// migrate runs the rolling migration from backend a to backend b under
// steady production and prints a table of what each stage lost and
// duplicated. grow, when set, adds a partition between the two
// replacements.
func migrate(ctx context.Context, out io.Writer, brokers []string, c config, a, b string, grow func(context.Context) error) error {
	pb, _ := newBackend("-migrate", a, brokers)
	p, err := producer.New(ctx, pb, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	t := newTally()
	prodCtx, stopProd := context.WithCancel(ctx)
	var mu sync.Mutex
	var sent []string
	var prodErr error
	prodDone := make(chan struct{})
	defer func() { stopProd(); <-prodDone }()
	go func() {
		defer close(prodDone)
		for i := 0; prodCtx.Err() == nil; i++ {
			v := fmt.Sprintf("rec-%d", i)
			if err := p.Send(prodCtx, &polykafka.Record{Topic: c.topic, Key: []byte(v), Value: []byte(v)}); err != nil {
				if prodCtx.Err() == nil {
					prodErr = err
				}
				return
			}
			mu.Lock()
			sent = append(sent, v)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	counts := func() int32 {
		n, _ := partitionCount(ctx, brokers, c.topic)
		return n
	}

	type stage struct{ name, members string }
	var stages []stage
	a1, err := startMember(ctx, brokers, a, c, t)
	if err != nil {
		return err
	}
	a2, err := startMember(ctx, brokers, a, c, t)
	if err != nil {
		a1.stop()
		return err
	}
	live := []*member{a1, a2}
	defer func() {
		for _, m := range live {
			m.stop()
		}
	}()
	if err := awaitOwned(ctx, c.topic, counts(), live...); err != nil {
		return err
	}
	stages = append(stages, stage{"start", a + "," + a})
	replace := func(i int) error {
		live[i].stop()
		m, err := startMember(ctx, brokers, b, c, t)
		if err != nil {
			live = slices.Delete(live, i, i+1)
			return err
		}
		live[i] = m
		return awaitOwned(ctx, c.topic, counts(), live...)
	}
	if err := replace(0); err != nil {
		return err
	}
	stages = append(stages, stage{"first member replaced", b + "," + a})
	if grow != nil {
		if err := grow(ctx); err != nil {
			return err
		}
		if err := awaitOwned(ctx, c.topic, counts(), live...); err != nil {
			return err
		}
		stages = append(stages, stage{fmt.Sprintf("topic grown to %d partitions", counts()), b + "," + a})
	}
	if err := replace(1); err != nil {
		return err
	}
	stages = append(stages, stage{"second member replaced", b + "," + b})
	stopProd()
	<-prodDone
	if prodErr != nil {
		return fmt.Errorf("producing: %w", prodErr)
	}
	mu.Lock()
	all := slices.Clone(sent)
	mu.Unlock()
	if err := t.await(ctx, all, time.Minute); err != nil {
		return err
	}
	lost, dups := t.count(all)
	fmt.Fprintf(out, "migrating group %s on %s from %s to %s\n", c.group, c.topic, a, b)
	for _, s := range stages {
		fmt.Fprintf(out, "  %-30s members %s\n", s.name, s.members)
	}
	fmt.Fprintf(out, "| from | to | records | lost | duplicates |\n| --- | --- | --- | --- | --- |\n| %s | %s | %d | %d | %d |\n", a, b, len(all), len(lost), dups)
	if len(lost) > 0 {
		return fmt.Errorf("%d records lost (first %v)", len(lost), lost[:min(5, len(lost))])
	}
	return nil
}

// partitionCount reads topic's partition count with a metadata request.
func partitionCount(ctx context.Context, brokers []string, topic string) (int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	return int32(len(td[topic].Partitions)), nil
}

// growByOne adds a partition to topic on the embedded cluster.
func growByOne(ctx context.Context, cl *testcluster.Cluster, topic string) error {
	n, err := partitionCount(ctx, cl.Brokers(), topic)
	if err != nil {
		return err
	}
	resp, err := cl.Admin().UpdatePartitions(ctx, int(n)+1, topic)
	if err == nil {
		err = resp.Error()
	}
	return err
}
