//go:build cgo

package confluent

import (
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
)

// TestAppendRecordOverwritesEveryField: Fetch converts into a reused
// buffer, field by field, so a converted record must keep nothing of the
// record that was in its place before.
func TestAppendRecordOverwritesEveryField(t *testing.T) {
	buf := []polykafka.Record{{Topic: "old", Partition: 9, Offset: 99, Key: []byte("k"), Value: []byte("v"),
		Headers: []polykafka.Header{{Key: "h"}}, Timestamp: time.Unix(1, 0), Native: "old"}}
	topic := "t"
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 2, Offset: 5}, Value: []byte("x"), Timestamp: time.UnixMilli(7)}
	out := appendRecord(buf[:0], m, polykafka.TopicPartition{Topic: "t", Partition: 2})
	require.Len(t, out, 1)
	assert.Equal(t, polykafka.Record{Topic: "t", Partition: 2, Offset: 5, Value: []byte("x"), Timestamp: time.UnixMilli(7), Native: m}, out[0],
		"a record converted into a reused buffer keeps nothing of the record that was there")
}
