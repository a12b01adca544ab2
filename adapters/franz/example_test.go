package franz_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/producer"
)

// Example produces three keyed records and reads them back with a consumer
// group, both on the franz-go backend. It runs on an in-process kfake
// cluster; against a real cluster, only the seed brokers change.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An in-process Kafka cluster with a 2-partition topic.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	const topic = "orders"
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		log.Fatal(err)
	}
	admin.Close()

	// Produce. A key's partition is Kafka's murmur2 hash of the key, the
	// same on every backend and in the Java client.
	p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: addrs}), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"a", "b", "c"} {
		r := &polykafka.Record{Topic: topic, Key: []byte(key), Value: []byte("order-" + key)}
		if err := p.Send(ctx, r); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s -> partition %d\n", key, r.Partition)
	}

	// Consume from the beginning: the group is new, so the Initial policy
	// says where its partitions start.
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: addrs}), "example-group", []string{topic},
		&consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var values []string
	err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
		values = append(values, string(r.Value))
		if len(values) == 3 {
			stop() // Run returns nil once its context is done
		}
		return nil
	})
	stop()
	if err != nil {
		log.Fatal(err)
	}
	slices.Sort(values)
	fmt.Println(values)

	// Close commits what was processed and leaves the group.
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("done")

	// Output:
	// a -> partition 0
	// b -> partition 0
	// c -> partition 0
	// [order-a order-b order-c]
	// done
}

// decisionRecorder is a consumer hook (consumer.HookStartDecision) that
// passes every start decision on to a channel.
type decisionRecorder chan discovery.Decision

func (r decisionRecorder) OnStartDecision(d discovery.Decision) { r <- d }

// ExampleNew_hooks shows where a new group starts: with Initial latest, at
// the end of each partition, skipping the records already there. A
// consumer.HookStartDecision hook sees every decision with its reason.
func ExampleNew_hooks() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An in-process Kafka cluster with a 2-partition topic holding four
	// records: three in partition 0 and one in partition 1.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	const topic = "events"
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		log.Fatal(err)
	}
	admin.Close()
	p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: addrs}), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"a", "b", "c", "d"} {
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Key: []byte(key)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// A new group: Initial latest applies to both partitions.
	decisions := make(decisionRecorder, 16)
	c, err := consumer.New(ctx, franz.New(polykafka.Connection{Brokers: addrs}), "hooks-group", []string{topic},
		&consumer.Options{Initial: discovery.Latest, Hooks: []any{decisions}})
	if err != nil {
		log.Fatal(err)
	}
	// The member joins the group in the background; wait for both
	// partitions' decisions.
	var got []discovery.Decision
	for len(got) < 2 {
		select {
		case d := <-decisions:
			got = append(got, d)
		case <-ctx.Done():
			log.Fatal("no assignment within 30s")
		}
	}
	slices.SortFunc(got, func(a, b discovery.Decision) int { return int(a.Partition - b.Partition) })
	for _, d := range got {
		fmt.Printf("partition %d starts at %d (%s)\n", d.Partition, d.Offset, d.Reason)
	}

	if err := c.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// partition 0 starts at 3 (initial)
	// partition 1 starts at 1 (initial)
}
