package benchkit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka/internal/testcluster"
)

var seq atomic.Int64

// Name returns a topic or group name unique to this process and time.
func Name(kind string) string {
	return fmt.Sprintf("pkbench-%s-%d-%d", kind, time.Now().UnixNano()%1e12, seq.Add(1))
}

// CreateTopic creates a topic of partitions partitions, waits until its
// metadata shows every partition with a leader, and returns its name.
func CreateTopic(ctx context.Context, tc *testcluster.Cluster, partitions int32) (string, error) {
	name := Name("t")
	return name, tc.CreateTopic(ctx, name, partitions)
}

// DeleteTopic deletes topic, so that the in-process broker does not carry
// earlier cases' records (memory, GC work) into later ones.
func DeleteTopic(ctx context.Context, tc *testcluster.Cluster, topic string) error {
	_, err := tc.Admin().DeleteTopics(ctx, topic)
	return err
}

// Fill writes n records of value with nil keys to topic with a plain
// franz-go client.
func Fill(ctx context.Context, tc *testcluster.Cluster, topic string, n int, value []byte) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var acks Acks
	promise := func(_ *kgo.Record, err error) { acks.Add(err) }
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return acks.Check(int64(n))
}
