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
func testBackend(_ *testing.T, brokers []string) driver.Backend {
	return confluent.New(polykafka.Connection{Brokers: brokers}, kafka.ConfigMap{
		"heartbeat.interval.ms": 250,
		"session.timeout.ms":    6000,
	})
}

// harness is the backend under test for the conformance suite.
func harness() drivertest.Harness {
	return drivertest.Harness{
		Name:         "confluent",
		NewBackend:   testBackend,
		Transactions: true,
		Reader:       true,
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
