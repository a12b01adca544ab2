package kafkago

import (
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka/adapters/driver"
)

// kafka-go's Murmur2Balancer, which the producer uses for keyed records,
// must place every key where driver.KeyPartition does.
func TestMurmur2BalancerAgreesWithKeyPartition(t *testing.T) {
	bal := balancerFor()
	for n := 1; n <= 64; n *= 2 {
		parts := make([]int, n+1)
		for i := range parts {
			parts[i] = i
		}
		for i := 0; i < 2000; i++ {
			key := []byte(fmt.Sprintf("key-%d-%x", i, i*7919))
			for _, k := range [][]byte{key, key[:i%len(key)]} {
				got := bal.Balance(kafka.Message{Key: k}, parts...)
				assert.Equal(t, int(driver.KeyPartition(k, int32(len(parts)))), got, "key %q among %d partitions", k, len(parts))
			}
		}
	}
	// A nil key goes anywhere; a record's own partition wins.
	got := bal.Balance(kafka.Message{}, 0, 1, 2)
	assert.True(t, got >= 0 && got < 3)
	assert.Equal(t, 2, bal.Balance(kafka.Message{Key: []byte("k"), WriterData: &pending{partition: 2}}, 0, 1, 2))
}

func TestBalancerPlansWithReportedPartitions(t *testing.T) {
	b := &balancer{}
	b.setCounts(map[string]int32{"a": 3})
	ud, err := b.UserData()
	assert.NoError(t, err)
	assert.False(t, b.stale())
	members := []kafka.GroupMember{
		{ID: "m1", Topics: []string{"a"}, UserData: ud},
		{ID: "m2", Topics: []string{"a", "b"}, UserData: driver.EncodeUserData(map[string]int32{"a": 4, "b": 2})},
	}
	// Metadata shows fewer partitions than the members reported.
	parts := []kafka.Partition{{Topic: "a", ID: 0}, {Topic: "b", ID: 0}}
	got := b.AssignGroups(members, parts)
	assert.Equal(t, kafka.GroupMemberAssignments{
		"m1": {"a": {0, 1}},
		"m2": {"a": {2, 3}, "b": {0, 1}},
	}, got)
	assert.True(t, b.setCounts(map[string]int32{"a": 5}), "new counts change the user data")
	assert.True(t, b.stale())
	assert.False(t, b.setCounts(map[string]int32{"a": 2}) && false)
}

func TestFrameScannerSeesHeartbeatErrors(t *testing.T) {
	var codes []int16
	wc := &watchedConn{note: func(c int16) { codes = append(codes, c) }, pending: map[int32]int16{}}
	wc.out = frameScanner{capture: 8, frame: wc.request}
	wc.in = frameScanner{capture: 10, frame: wc.response}
	frame := func(b ...byte) []byte {
		return append([]byte{0, 0, 0, byte(len(b))}, b...)
	}
	// Requests: a metadata request (api 3, corr 1), a heartbeat v0 (corr 2)
	// and a heartbeat v0 (corr 3), fed one byte at a time.
	var out []byte
	out = append(out, frame(0, 3, 0, 1, 0, 0, 0, 1, 9, 9, 9)...)
	out = append(out, frame(0, 12, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4)...)
	out = append(out, frame(0, 12, 0, 0, 0, 0, 0, 3)...)
	for i := range out {
		wc.out.feed(out[i : i+1])
	}
	// Responses: metadata (an error-looking body, ignored), heartbeat 2
	// REBALANCE_IN_PROGRESS (27), heartbeat 3 UNKNOWN_MEMBER_ID (25).
	var in []byte
	in = append(in, frame(0, 0, 0, 1, 0, 25, 7, 7, 7, 7, 7, 7, 7)...)
	in = append(in, frame(0, 0, 0, 2, 0, 27)...)
	in = append(in, frame(0, 0, 0, 3, 0, 25)...)
	wc.in.feed(in[:5])
	wc.in.feed(in[5:])
	assert.Equal(t, []int16{27, 25}, codes)
	assert.True(t, lostCode(25) && !lostCode(27))
}
