package franz_test

import (
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
	goleak.VerifyTestMain(m)
}

// testBackend is the franz backend with test timings: a 250ms heartbeat so
// members learn of rebalances quickly, a short metadata minimum age, and a
// 500ms fetch max wait (the Java client's default) instead of kgo's 5s:
// kgo does not interrupt a fetch in flight when a partition is resumed, so
// when a resumed partition shares its leader with a partition being
// fetched, its records wait for that long poll to end (PauseResume took 5s
// instead of 0.1s whenever both partitions had the same leader).
func testBackend(_ *testing.T, brokers []string) driver.Backend {
	return franz.New(polykafka.Connection{Brokers: brokers},
		kgo.HeartbeatInterval(250*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		Name:         "franz",
		NewBackend:   testBackend,
		Transactions: true,
		Reader:       true,
		CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) {
			var cl *kgo.Client
			require.True(t, c.As(&cl), "a franz consumer exposes its *kgo.Client")
			assert.NotNil(t, cl)
			var pcl *kgo.Client
			require.True(t, p.As(&pcl), "a franz producer exposes its *kgo.Client")
			assert.NotNil(t, pcl)
			assert.NotSame(t, cl, pcl, "the consumer and the producer own separate clients")
		},
	})
}

func TestAdmin(t *testing.T) {
	admintest.Run(t, admintest.Harness{NewBackend: testBackend})
}
