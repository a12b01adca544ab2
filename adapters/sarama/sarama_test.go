package polysarama_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/drivertest"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/admin/admintest"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/internal/testredis"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = verifyNoLeaks()
	}
	os.Exit(code)
}

// verifyNoLeaks is goleak.VerifyTestMain with a longer wait: when
// consumer.New fails it closes the driver in the background (bounded by
// CloseTimeout), and a sarama consumer whose group is still joining finishes
// its Close only once sarama's metadata retries for the missing topic end
// (Metadata.Retry.Max x Metadata.Retry.Backoff, about 1s by default); a
// producer closed while sarama still creates its producer leaves that
// attempt to end on its own (Producer.Transaction.Retry, 5s by default).
// Both outlast goleak's own retries (about 0.5s).
func verifyNoLeaks() int {
	opts := []goleak.Option{
		// go-metrics starts one process-wide meter goroutine the first
		// time any sarama client registers a meter; it is never stopped
		// and belongs to no client.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		// sarama's per-topic circuit breaker, opened by three failed
		// partition lookups (TestBlockedProduceHonoursContextAndClose
		// fails its stuck records by closing the client), sleeps 10s
		// before it half-closes, whoever still uses it.
		goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testBackend is the sarama backend with test timings only: a 250ms
// heartbeat so members learn of rebalances quickly, and a matching
// rebalance retry backoff.
func testBackend(t *testing.T, brokers []string) driver.Backend {
	return testConnect(t, polykafka.Connection{Brokers: brokers})
}

func testConnect(_ *testing.T, conn polykafka.Connection) driver.Backend {
	cfg := sarama.NewConfig()
	cfg.Version = polysarama.DefaultVersion
	cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 250 * time.Millisecond
	return polysarama.New(conn, cfg)
}

// harness is the backend under test for the conformance suite.
func harness() drivertest.Harness {
	return drivertest.Harness{
		Name:         "sarama",
		NewBackend:   testBackend,
		Connect:      testConnect,
		Transactions: true,
		Reader:       true,
		CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) {
			var cl sarama.Client
			require.True(t, c.As(&cl), "a sarama consumer exposes its sarama.Client")
			assert.NotNil(t, cl)
			var cg sarama.ConsumerGroup
			require.True(t, c.As(&cg), "a sarama consumer exposes its sarama.ConsumerGroup")
			var pcl sarama.Client
			require.True(t, p.As(&pcl), "a sarama producer exposes its sarama.Client")
			assert.NotSame(t, cl, pcl, "the consumer and the producer own separate clients")
			var ap sarama.AsyncProducer
			require.True(t, p.As(&ap), "a sarama producer exposes its sarama.AsyncProducer")
			assert.NotNil(t, ap)
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
