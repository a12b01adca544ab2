package franz_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// Records produced natively on the client that As exposes keep kgo's own
// semantics: the adapter's per-record partitioning applies only to records
// sent through the portable producer.
func TestNativeProduceThroughAs(t *testing.T) {
	tc := testcluster.New(t)
	topic := tc.Topic(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := producer.New(ctx, testBackend(t, tc.Brokers()), &producer.Options{RecordPartition: true})
	require.NoError(t, err)
	defer p.Close()
	var cl *kgo.Client
	require.True(t, p.As(&cl))

	// Partition 9 does not exist: a native record's Partition is ignored by
	// kgo's partitioner, as without polykafka.
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 9, Value: []byte("native")})
	require.NoError(t, res.FirstErr(), "a native record is partitioned by kgo's own partitioner")
	assert.Less(t, res[0].Record.Partition, int32(2))

	// The same client still honours portable records' partitions.
	r := &polykafka.Record{Topic: topic, Partition: 1, Value: []byte("portable")}
	require.NoError(t, p.Send(ctx, r))
	assert.Equal(t, int32(1), r.Partition)
	r = &polykafka.Record{Topic: topic, Partition: 9, Value: []byte("portable")}
	err = p.Send(ctx, r)
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), "a portable record naming a missing partition: %v", err)
}
