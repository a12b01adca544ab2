package producer_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// The examples run on an in-process Kafka cluster (or the one named by
// KAFKA_BROKERS). Topic names and transactional ids carry a time stamp so
// that they are new on every run.

// ExampleProducer_Send sends records one at a time and waits for each to be
// acknowledged: on success, the record holds its partition and offset.
func ExampleProducer_Send() {
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

	p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: cluster.Brokers()}), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"apple", "banana"} {
		r := &polykafka.Record{Topic: topic, Key: []byte("fruit"), Value: []byte(v)}
		if err := p.Send(ctx, r); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: partition %d, offset %d\n", r.Value, r.Partition, r.Offset)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// apple: partition 0, offset 0
	// banana: partition 0, offset 1
}

// ExampleProducer_SendAsync sends records without waiting for each: the
// callback of every record runs once, and Flush waits for all of them.
func ExampleProducer_SendAsync() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("events-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 3); err != nil {
		log.Fatal(err)
	}

	p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: cluster.Brokers()}), nil)
	if err != nil {
		log.Fatal(err)
	}
	// Callbacks run on the backend's goroutines: count atomically.
	var delivered, failed atomic.Int64
	for i := range 100 {
		r := &polykafka.Record{Topic: topic, Key: fmt.Appendf(nil, "user-%d", i), Value: []byte("clicked")}
		p.SendAsync(ctx, r, func(r *polykafka.Record, err error) {
			if err != nil {
				failed.Add(1)
				return
			}
			delivered.Add(1)
		})
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d delivered, %d failed\n", delivered.Load(), failed.Load())
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// 100 delivered, 0 failed
}

// ExampleProducer_BeginTransaction writes two records atomically: consumers
// with consumer.Options.ReadCommitted see both once the transaction
// commits, and neither if it aborts.
func ExampleProducer_BeginTransaction() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("ledger-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 1); err != nil {
		log.Fatal(err)
	}

	p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: cluster.Brokers()}),
		&producer.Options{TransactionalID: fmt.Sprintf("ledger-writer-%d", time.Now().UnixNano())})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.BeginTransaction(ctx); err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"debit 10", "credit 10"} {
		r := &polykafka.Record{Topic: topic, Value: []byte(v)}
		if err := p.Send(ctx, r); err != nil {
			_ = p.AbortTransaction(ctx) // neither record becomes visible
			log.Fatal(err)
		}
		fmt.Printf("%s: offset %d\n", r.Value, r.Offset)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed")
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// debit 10: offset 0
	// credit 10: offset 1
	// committed
}
