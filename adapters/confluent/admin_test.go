//go:build cgo

package confluent

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// TestAdminCommitAsAdmin checks, on the broker, what the admin suite reads
// through the portable API: AlterConsumerGroupOffsets carries each
// offset's metadata, an unknown group is Dead with no commits, and a
// commit while the group has a member is refused with Rebalancing.
func TestAdminCommitAsAdmin(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	for i := range 10 {
		cl.Produce(t, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte("x")})
	}
	group := cl.Group(t)
	b := testBackendFor(cl.Brokers())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	da, err := b.OpenAdmin(ctx, driver.AdminConfig{Logger: testLogger()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, da.Close(ctx)) }()

	st, err := da.GroupState(ctx, group)
	require.NoError(t, err)
	assert.Equal(t, driver.GroupState{State: "Dead"}, st, "a group that does not exist")
	got, err := da.Committed(ctx, group, []string{topic})
	require.NoError(t, err)
	assert.Empty(t, got)

	want := map[polykafka.TopicPartition]polykafka.CommittedOffset{
		{Topic: topic, Partition: 0}: {Offset: 3, Metadata: "polykafka:v1:baseline=2"},
		{Topic: topic, Partition: 1}: {Offset: 5, Metadata: ""},
	}
	require.NoError(t, da.CommitAsAdmin(ctx, group, want))
	onBroker := cl.Committed(t, group, topic)
	assert.Equal(t, int64(3), onBroker[0].At)
	assert.Equal(t, "polykafka:v1:baseline=2", onBroker[0].Metadata, "the metadata reaches the broker")
	assert.Equal(t, int64(5), onBroker[1].At)
	got, err = da.Committed(ctx, group, []string{topic})
	require.NoError(t, err)
	assert.Equal(t, want, got)
	st, err = da.GroupState(ctx, group)
	require.NoError(t, err)
	assert.Equal(t, driver.GroupState{State: "Empty"}, st)

	h := &handler{}
	c := openConsumer(t, b, group, []string{topic}, h)
	defer closeConsumer(t, c)
	fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) > 0 })
	st, err = da.GroupState(ctx, group)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Members)
	err = da.CommitAsAdmin(ctx, group, map[polykafka.TopicPartition]polykafka.CommittedOffset{{Topic: topic, Partition: 0}: {Offset: 1}})
	require.Error(t, err, "a commit outside the generation while the group has a member")
	parts, rest := driver.PartitionErrors(err)
	assert.NoError(t, rest)
	assert.Len(t, parts, 1)
	assert.Equal(t, polykafka.Rebalancing, da.ErrorCode(err), "%v", err)
}
