package kafkago

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// frame returns req as a size-prefixed v1 request with correlation id 7.
func frame(req kmsg.Request) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint16(b, 2)
	b = append(b, "pk"...)
	b = req.AppendTo(b)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func joinWith(metas ...[]byte) *kmsg.JoinGroupRequest {
	j := kmsg.NewPtrJoinGroupRequest()
	j.Version = 1
	j.Group, j.ProtocolType, j.SessionTimeoutMillis, j.RebalanceTimeoutMillis = "g", "consumer", 10000, 10000
	for _, m := range metas {
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", m
		j.Protocols = append(j.Protocols, p)
	}
	return j
}

func TestJoinRelabelerSplitWrites(t *testing.T) {
	// What kafka.ConsumerGroup writes: version 1, topics, user data, and
	// no owned partitions.
	kafkagoV1 := []byte{0, 1, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 2, 'u', 'd'}
	asV0 := append([]byte{0, 0}, kafkagoV1[2:]...)
	// A well-formed version 1 (owned partitions present) is left alone.
	var full kmsg.ConsumerMemberMetadata
	full.Default()
	full.Version, full.Topics = 1, []string{"t"}
	wellFormed := full.AppendTo(nil)

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID = "g", "m"
	in := bytes.Join([][]byte{frame(hb), frame(joinWith(kafkagoV1, wellFormed)), frame(hb)}, nil)
	want := bytes.Join([][]byte{frame(hb), frame(joinWith(asV0, wellFormed)), frame(hb)}, nil)

	for _, chunk := range []int{1, 3, 7, len(in)} {
		var r joinRelabeler
		var out []byte
		for i := 0; i < len(in); i += chunk {
			out = append(out, r.process(in[i:min(i+chunk, len(in))])...)
		}
		require.Equal(t, want, out, "writes of %d bytes: the join's kafka-go subscription is relabeled version 0, everything else passes unchanged", chunk)
		assert.Empty(t, r.buf, "writes of %d bytes: nothing is held after complete frames", chunk)
	}

	var m kmsg.ConsumerMemberMetadata
	require.NoError(t, m.ReadFrom(asV0))
	assert.Equal(t, len(asV0), len(m.AppendTo(nil)), "the relabeled subscription is exactly version 0")
}
