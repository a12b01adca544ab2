package franz_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/drivertest"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/admin/admintest"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/producer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Once PoolSize dials to Redis have failed (TestRedisStoreFailureIsClassified
		// cuts Redis away), go-redis probes the server from a goroutine
		// that sees the client's Close only after its 1 s sleep
		// (internal/pool/pool.go tryDial): it outlives the closed client
		// by up to a second, longer than goleak waits.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// testBackend is the franz backend with test timings: a 250ms heartbeat so
// members learn of rebalances quickly, a short metadata minimum age, and a
// 500ms fetch max wait (the Java client's default) instead of kgo's 5s:
// kgo does not interrupt a fetch in flight when a partition is resumed, so
// when a resumed partition shares its leader with a partition being
// fetched, its records wait for that long poll to end (PauseResume took 5s
// instead of 0.1s whenever both partitions had the same leader).
func testBackend(t *testing.T, brokers []string) driver.Backend {
	return testConnect(t, polykafka.Connection{Brokers: brokers})
}

func testConnect(_ *testing.T, conn polykafka.Connection) driver.Backend {
	return franz.New(conn,
		kgo.HeartbeatInterval(250*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, harness(consumer.GroupProtocolClassic))
}

// TestConformanceKIP848 runs the suite again with every group member on
// KIP-848's consumer group protocol (kgo's ServerSideBalancer).
func TestConformanceKIP848(t *testing.T) {
	drivertest.Run(t, harness(consumer.GroupProtocolConsumer))
}

func harness(gp consumer.GroupProtocol) drivertest.Harness {
	return drivertest.Harness{
		Name:          "franz",
		NewBackend:    testBackend,
		Connect:       testConnect,
		Transactions:  true,
		StableOffsets: true,
		Reader:        true,
		KIP848:        true,
		GroupProtocol: gp,
		CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) {
			var cl *kgo.Client
			require.True(t, c.As(&cl), "a franz consumer exposes its *kgo.Client")
			assert.NotNil(t, cl)
			var pcl *kgo.Client
			require.True(t, p.As(&pcl), "a franz producer exposes its *kgo.Client")
			assert.NotNil(t, pcl)
			assert.NotSame(t, cl, pcl, "the consumer and the producer own separate clients")
		},
	}
}

func TestAdmin(t *testing.T) {
	admintest.Run(t, admintest.Harness{NewBackend: testBackend})
}

// TestKgoRecordFields guards Produce's fill of a reused kgo.Record slot,
// which writes it one field at a time, every field: a field kgo adds must
// be set there too.
func TestKgoRecordFields(t *testing.T) {
	rt := reflect.TypeFor[kgo.Record]()
	var names []string
	for i := range rt.NumField() {
		names = append(names, rt.Field(i).Name)
	}
	assert.Equal(t, []string{"Key", "Value", "Headers", "Timestamp", "Topic", "Partition", "Attrs",
		"ProducerEpoch", "ProducerID", "LeaderEpoch", "Offset", "Context"}, names,
		"kgo.Record's fields changed: set the new ones in Produce, then update this list")
}
