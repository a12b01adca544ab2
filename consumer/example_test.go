package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// The examples run on an in-process Kafka cluster (or the one named by
// KAFKA_BROKERS). Topic and group names carry a time stamp so that they are
// new on every run.

// ExampleConsumer_Run reads a topic from its beginning, one record at a
// time, and stops after the third record by cancelling Run's context.
func ExampleConsumer_Run() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 1); err != nil {
		log.Fatal(err)
	}
	backend := franz.New(polykafka.Connection{Brokers: cluster.Brokers()})

	p, err := producer.New(ctx, backend, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"apple", "banana", "cherry"} {
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// A new group starts where Initial says: here, at the first record.
	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic}, &consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	n := 0
	err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
		fmt.Printf("offset %d: %s\n", r.Offset, r.Value)
		if n++; n == 3 {
			stop() // Run returns nil once its context is done
		}
		return nil
	})
	stop()
	if err != nil {
		log.Fatal(err)
	}
	// Close commits the processed offsets and leaves the group.
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// offset 0: apple
	// offset 1: banana
	// offset 2: cherry
}

// ExampleConsumer_AwaitAssignment waits until the member owns partitions
// whose start is decided: the group is joined in the background, and
// New does not wait for it.
func ExampleConsumer_AwaitAssignment() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 3); err != nil {
		log.Fatal(err)
	}

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: cluster.Brokers()}), group, []string{topic}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The only member of its group gets every partition.
	tps, err := c.AwaitAssignment(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, tp := range tps {
		fmt.Println("assigned partition", tp.Partition)
	}

	// Output:
	// assigned partition 0
	// assigned partition 1
	// assigned partition 2
}

// ExampleConsumer_Poll reads records in a loop of its own instead of a
// handler: Poll returns what was fetched, Mark records what was processed,
// and with CommitManual only Commit (or a revoke, or Close) commits it.
func ExampleConsumer_Poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 1); err != nil {
		log.Fatal(err)
	}
	backend := franz.New(polykafka.Connection{Brokers: cluster.Brokers()})

	p, err := producer.New(ctx, backend, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"apple", "banana", "cherry"} {
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic},
		&consumer.Options{Initial: discovery.Earliest, Commit: consumer.CommitManual})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for n := 0; n < 3; {
		rs, err := c.Poll(ctx) // at least one record, maybe fewer than produced
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range rs {
			fmt.Printf("offset %d: %s\n", r.Offset, r.Value)
		}
		c.Mark(rs...)
		n += len(rs)
	}
	if err := c.Commit(ctx); err != nil {
		log.Fatal(err)
	}

	// The group's committed offset is the next one to read.
	committed, err := cluster.Admin().FetchOffsets(ctx, group)
	if err != nil {
		log.Fatal(err)
	}
	o, _ := committed.Lookup(topic, 0)
	fmt.Println("committed:", o.At)

	// Output:
	// offset 0: apple
	// offset 1: banana
	// offset 2: cherry
	// committed: 3
}

// startDecisions is a consumer hook: it implements
// consumer.HookStartDecision and passes every decision on.
type startDecisions chan discovery.Decision

func (ch startDecisions) OnStartDecision(d discovery.Decision) { ch <- d }

// ExampleHookStartDecision shows where a partition starts, and why. The
// first member of a new group starts at the end of the partition
// (Initial latest); the decision is committed before any record is handed
// out, so a later member of the group resumes from it.
func ExampleHookStartDecision() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 1); err != nil {
		log.Fatal(err)
	}
	backend := franz.New(polykafka.Connection{Brokers: cluster.Brokers()})

	p, err := producer.New(ctx, backend, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"apple", "banana"} {
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	for _, member := range []string{"first", "second"} {
		decisions := make(startDecisions, 1)
		c, err := consumer.New(ctx, backend, group, []string{topic},
			&consumer.Options{Initial: discovery.Latest, Hooks: []any{decisions}})
		if err != nil {
			log.Fatal(err)
		}
		select {
		case d := <-decisions:
			fmt.Printf("%s member: partition %d starts at offset %d (%s)\n", member, d.Partition, d.Offset, d.Reason)
		case <-ctx.Done():
			log.Fatal("no start decision within 30s")
		}
		if err := c.Close(); err != nil {
			log.Fatal(err)
		}
	}

	// Output:
	// first member: partition 0 starts at offset 2 (initial)
	// second member: partition 0 starts at offset 2 (committed)
}

// ExampleConsumer_RunBatch hands records to the handler in batches of
// consecutive records of one partition, at most MaxPollRecords at a time.
// How records are split into batches depends on the fetches; their order
// within a partition does not.
func ExampleConsumer_RunBatch() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 1); err != nil {
		log.Fatal(err)
	}
	backend := franz.New(polykafka.Connection{Brokers: cluster.Brokers()})

	p, err := producer.New(ctx, backend, nil)
	if err != nil {
		log.Fatal(err)
	}
	for i := range 5 {
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: fmt.Appendf(nil, "order-%d", i)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic},
		&consumer.Options{Initial: discovery.Earliest, MaxPollRecords: 2})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	n := 0
	err = c.RunBatch(runCtx, func(_ context.Context, rs []polykafka.Record) error {
		if len(rs) > 2 {
			log.Fatalf("a batch of %d records, more than MaxPollRecords", len(rs))
		}
		for _, r := range rs {
			fmt.Printf("offset %d: %s\n", r.Offset, r.Value)
		}
		if n += len(rs); n == 5 {
			stop()
		}
		return nil // the whole batch is processed
	})
	stop()
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// offset 0: order-0
	// offset 1: order-1
	// offset 2: order-2
	// offset 3: order-3
	// offset 4: order-4
}

// ExampleConsumer_Run_concurrent runs the handler on up to 8 goroutines,
// one key at a time in order, and sends a record that keeps failing to
// the dead-letter topic <topic>.DLT, which the application creates.
func ExampleConsumer_Run_concurrent() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	for _, t := range []string{topic, topic + ".DLT"} {
		if err := cluster.CreateTopic(ctx, t, 1); err != nil {
			log.Fatal(err)
		}
	}
	backend := franz.New(polykafka.Connection{Brokers: cluster.Brokers()})
	p, err := producer.New(ctx, backend, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for i, v := range []string{"ok", "ok", "poison", "ok"} {
		r := &polykafka.Record{Topic: topic, Key: []byte(fmt.Sprintf("customer-%d", i)), Value: []byte(v)}
		if err := p.Send(ctx, r); err != nil {
			log.Fatal(err)
		}
	}

	// Stop once all four offsets are committed: the poison record counts
	// as processed when its dead-letter write is acknowledged.
	runCtx, stop := context.WithCancel(ctx)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	committed := commitWatch(func(offsets map[polykafka.TopicPartition]int64, err error) {
		if err == nil && offsets[tp] == 4 {
			stop()
		}
	})
	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic}, &consumer.Options{
		Initial:        discovery.Earliest,
		CommitInterval: 100 * time.Millisecond,
		Hooks:          []any{committed},
		Concurrency:    8,
		Ordering:       consumer.ByKey,
		OnError: consumer.ErrorPolicy{
			Retry: true, MaxAttempts: 2, Backoff: 10 * time.Millisecond,
			DeadLetter: &consumer.DeadLetter{Producer: p}, // the same producer, or one on another backend
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	var handled atomic.Int32
	err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
		if string(r.Value) == "poison" {
			return errors.New("cannot bill this order")
		}
		handled.Add(1)
		return nil
	})
	stop()
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}

	// Read the dead letter back.
	dl, err := consumer.New(ctx, backend, group+"-dlt", []string{topic + ".DLT"}, &consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		log.Fatal(err)
	}
	defer dl.Close()
	dlCtx, dlStop := context.WithCancel(ctx)
	_ = dl.Run(dlCtx, func(_ context.Context, r polykafka.Record) error {
		for _, h := range r.Headers {
			switch h.Key {
			case consumer.HeaderDLTOffset, consumer.HeaderDLTError, consumer.HeaderDLTAttempts:
				fmt.Printf("%s: %s\n", h.Key, h.Value)
			}
		}
		dlStop()
		return nil
	})
	dlStop()
	fmt.Println("handled:", handled.Load())

	// Output:
	// polykafka.dlt.offset: 2
	// polykafka.dlt.error: cannot bill this order
	// polykafka.dlt.attempts: 2
	// handled: 3
}

// commitWatch is a consumer.HookCommit made of a function.
type commitWatch func(offsets map[polykafka.TopicPartition]int64, err error)

func (f commitWatch) OnCommit(offsets map[polykafka.TopicPartition]int64, err error) { f(offsets, err) }
