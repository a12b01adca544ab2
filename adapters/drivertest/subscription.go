package drivertest

// What a member tells the coordinator when it joins: every protocol's
// metadata must parse strictly under Kafka's ConsumerProtocolSubscription
// schema at the version it declares, or a Java or librdkafka leader of a
// mixed group fails to read it (kafka-go#1156, #762, #1128).

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinCapture records the protocol metadata of every JoinGroup of one group
// as the broker receives it.
type joinCapture struct {
	mu    sync.Mutex
	seen  []joinProtocol
	group string
}

type joinProtocol struct {
	protocolType string
	name         string
	metadata     []byte
}

// captureJoins starts recording the JoinGroup requests of group (in-process
// cluster only: the case skips against KAFKA_BROKERS).
func captureJoins(t *testing.T, e *env, group string) *joinCapture {
	t.Helper()
	fake := e.cluster.Fake()
	if fake == nil {
		t.Skip("capturing JoinGroup requests needs the in-process cluster's request interception; this case does not run against KAFKA_BROKERS")
	}
	c := &joinCapture{group: group}
	fake.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		r := req.(*kmsg.JoinGroupRequest)
		if r.Group != group {
			return nil, nil, false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range r.Protocols {
			c.seen = append(c.seen, joinProtocol{protocolType: r.ProtocolType, name: p.Name, metadata: append([]byte(nil), p.Metadata...)})
		}
		return nil, nil, false
	})
	return c
}

func (c *joinCapture) protocols() []joinProtocol {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]joinProtocol(nil), c.seen...)
}

// maxSubscriptionVersion is the highest ConsumerProtocolSubscription
// version whose schema kmsg knows (v3: rack id, Kafka 3.x).
const maxSubscriptionVersion = 3

// decodeSubscription decodes b strictly as a ConsumerProtocolSubscription:
// the version it declares must be one the schema defines, every field of
// that version must be present, and nothing may follow the last one.
// kmsg's ReadFrom reports missing bytes (kbin.ErrNotEnoughData) but
// ignores trailing ones, so the byte count is checked by encoding the
// decoded value again at the same version.
func decodeSubscription(b []byte) (kmsg.ConsumerMemberMetadata, error) {
	var m kmsg.ConsumerMemberMetadata
	if err := m.ReadFrom(b); err != nil {
		return m, fmt.Errorf("does not parse at the version it declares (%d): %w", m.Version, err)
	}
	if m.Version < 0 || m.Version > maxSubscriptionVersion {
		return m, fmt.Errorf("declares version %d, which the schema does not define (0..%d)", m.Version, maxSubscriptionVersion)
	}
	if n := len(m.AppendTo(nil)); n != len(b) {
		return m, fmt.Errorf("has %d bytes after the fields of version %d (%d bytes, the schema's fields take %d)", len(b)-n, m.Version, len(b), n)
	}
	return m, nil
}

func testJoinMetadataStrict(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 2), e.cluster.Group(t)
	joins := captureJoins(t, e, group)
	c := e.newConsumer(group, []string{topic}, nil)
	e.run(c, newSink().handler)
	e.assigned(wait, topic, 2, c)
	// Growth makes the member rejoin with its new partition counts in its
	// user data: that join is checked too.
	e.cluster.AddPartitions(t, topic, 3)
	e.assigned(wait, topic, 3, c)

	ps := joins.protocols()
	require.NotEmpty(t, ps, "%s: the broker received no JoinGroup of the group", e.rule)
	for i, p := range ps {
		if p.protocolType != "consumer" {
			continue
		}
		m, err := decodeSubscription(p.metadata)
		if !assert.NoError(t, err, "%s: join %d, protocol %q: the subscription (% x)", e.rule, i, p.name, p.metadata) {
			continue
		}
		assert.Contains(t, m.Topics, topic, "%s: join %d, protocol %q: the subscription names the topic", e.rule, i, p.name)
	}
}
