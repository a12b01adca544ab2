//go:build cgo

package confluent_test

import (
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/drivertest"
	"github.com/polykafka/polykafka/admin/admintest"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/internal/testredis"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBackend is the confluent backend with test timings: a 250ms
// heartbeat so members learn of rebalances quickly.
func testBackend(t *testing.T, brokers []string) driver.Backend {
	return testConnect(t, polykafka.Connection{Brokers: brokers})
}

func testConnect(_ *testing.T, conn polykafka.Connection) driver.Backend {
	return confluent.New(conn, kafka.ConfigMap{
		"heartbeat.interval.ms": 250,
		"session.timeout.ms":    6000,
	})
}

// testBackendKIP848 is the confluent backend for members on KIP-848's
// protocol: session.timeout.ms and heartbeat.interval.ms are the broker's
// there (librdkafka warns that it ignores the client's).
func testBackendKIP848(_ *testing.T, brokers []string) driver.Backend {
	return confluent.New(polykafka.Connection{Brokers: brokers}, nil)
}

// harness is the backend under test for the conformance suite.
func harness() drivertest.Harness {
	return drivertest.Harness{
		Name:          "confluent",
		NewBackend:    testBackend,
		Connect:       testConnect,
		Transactions:  true,
		StableOffsets: true,
		Reader:        true,
		KIP848:        true,
		CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) {
			var kc *kafka.Consumer
			require.True(t, c.As(&kc), "a confluent consumer exposes its *kafka.Consumer")
			assert.NotNil(t, kc)
			var kp *kafka.Producer
			require.True(t, p.As(&kp), "a confluent producer exposes its *kafka.Producer")
			assert.NotNil(t, kp)
		},
	}
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, harness())
}

// TestConformanceKIP848 runs the suite again with every group member on
// KIP-848's consumer group protocol (group.protocol=consumer, early access
// in librdkafka 2.11).
func TestConformanceKIP848(t *testing.T) {
	h := harness()
	h.NewBackend = testBackendKIP848
	h.GroupProtocol = consumer.GroupProtocolConsumer
	drivertest.Run(t, h)
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
