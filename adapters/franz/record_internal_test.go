package franz

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
)

// TestSetRecordOverwritesEveryField: Fetch converts into a reused buffer,
// field by field, so a converted record must keep nothing of the record
// that was in its place before.
func TestSetRecordOverwritesEveryField(t *testing.T) {
	r := polykafka.Record{Topic: "old", Partition: 9, Offset: 99, Key: []byte("k"), Value: []byte("v"),
		Headers: []polykafka.Header{{Key: "h"}}, Timestamp: time.Unix(1, 0), Native: "old"}
	kr := &kgo.Record{Topic: "t", Partition: 2, Offset: 5, Value: []byte("x"), Timestamp: time.UnixMilli(7)}
	setRecord(&r, kr)
	assert.Equal(t, polykafka.Record{Topic: "t", Partition: 2, Offset: 5, Value: []byte("x"), Timestamp: time.UnixMilli(7), Native: kr}, r,
		"a record converted into a reused buffer keeps nothing of the record that was there")
}
