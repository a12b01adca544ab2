package kafkago_test

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/drivertest"
	"github.com/polykafka/polykafka/adapters/kafkago"
	"github.com/polykafka/polykafka/admin/admintest"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/internal/testredis"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBackend is the kafka-go backend with test timings: a 250ms heartbeat
// so members learn of rebalances quickly, and a 250ms backoff after a
// failed join instead of 5s.
func testBackend(t *testing.T, brokers []string) driver.Backend {
	return testConnect(t, polykafka.Connection{Brokers: brokers})
}

func testConnect(_ *testing.T, conn polykafka.Connection) driver.Backend {
	return kafkago.New(conn, &kafkago.Options{
		ConsumerGroup: kafka.ConsumerGroupConfig{
			HeartbeatInterval: 250 * time.Millisecond,
			JoinGroupBackoff:  250 * time.Millisecond,
		},
	})
}

// harness is the backend under test for the conformance suite.
func harness() drivertest.Harness {
	return drivertest.Harness{
		Name:       "kafkago",
		NewBackend: testBackend,
		Connect:    testConnect,
		Reader:     true,
		CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) {
			var cg *kafka.ConsumerGroup
			require.True(t, c.As(&cg), "a kafkago consumer exposes its *kafka.ConsumerGroup")
			assert.NotNil(t, cg)
			var w *kafka.Writer
			require.True(t, p.As(&w), "a kafkago producer exposes its *kafka.Writer")
			assert.NotNil(t, w)
		},
	}
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, harness())
}

// TestConformanceRedisStore runs the suite with positions kept in Redis
// instead of the group's commits (skipped without REDIS_ADDR).
func TestConformanceRedisStore(t *testing.T) {
	addr := testredis.Addr(t)
	h := harness()
	h.Store = func(t *testing.T) offsetstore.Store { return testredis.Store(t, addr) }
	drivertest.Run(t, h)
}

func TestAdmin(t *testing.T) {
	admintest.Run(t, admintest.Harness{NewBackend: testBackend})
}
