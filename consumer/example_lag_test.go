package consumer_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// ExampleConsumer_Lag shows how far a member is behind: 5 records written,
// 3 processed, none committed yet beyond the start decision, then
// committed.
func ExampleConsumer_Lag() {
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
		if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: fmt.Append(nil, i)}); err != nil {
			log.Fatal(err)
		}
	}
	_ = p.Close()

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic},
		&consumer.Options{Initial: discovery.Earliest, Commit: consumer.CommitManual})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var rs []*polykafka.Record
	for len(rs) < 3 {
		got, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		rs = append(rs, got...)
	}
	c.Mark(rs[:3]...)
	print := func() {
		lags, err := c.Lag(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, l := range lags {
			fmt.Printf("partition %d: end %d, processed %d (lag %d), committed %d (lag %d)\n",
				l.Partition, l.End, l.Processed, l.Lag, l.Committed, l.CommittedLag)
		}
	}
	print()
	if err := c.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	print()
	// Output:
	// partition 0: end 5, processed 3 (lag 2), committed 0 (lag 5)
	// partition 0: end 5, processed 3 (lag 2), committed 3 (lag 2)
}
