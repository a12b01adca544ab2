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
	"github.com/polykafka/polykafka/internal/testcluster"
)

// TestCloseAfterDeadlineWhileAssigned: a Close whose ctx is done before
// the unsubscription's revocation has run still returns, and leaves no
// goroutine in librdkafka's close behind (TestMain's goleak check):
// librdkafka's close must not raise the revocation itself
// (librdkafka#4884).
func TestCloseAfterDeadlineWhileAssigned(t *testing.T) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	cl.Produce(t, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("x")})
	b := testBackendFor(cl.Brokers())
	h := &handler{}
	c := openConsumer(t, b, cl.Group(t), []string{topic}, h)
	fetchUntil(t, c, 20*time.Second, func(rs []polykafka.Record) bool { return len(rs) >= 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- c.Close(ctx) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "Close with a done ctx did not return within 20s")
	}
	cc := c.(*consumer)
	cc.pollMu.Lock()
	late := cc.lateRebalances
	cc.pollMu.Unlock()
	assert.Zero(t, late, "rebalance events run from inside librdkafka's close")
}
