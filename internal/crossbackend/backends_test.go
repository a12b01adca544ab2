package crossbackend

import (
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
)

// backend is one adapter on conn, configured as its own conformance harness is:
// short heartbeats, nothing that changes semantics.
type backend struct {
	name string
	open func(conn polykafka.Connection) driver.Backend
}

// backends lists the adapters under test; confluent_test.go adds
// confluent in cgo builds.
var backends = []backend{
	{"franz", func(conn polykafka.Connection) driver.Backend {
		return franz.New(conn,
			kgo.HeartbeatInterval(250*time.Millisecond),
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.FetchMaxWait(500*time.Millisecond))
	}},
	{"sarama", func(conn polykafka.Connection) driver.Backend {
		cfg := sarama.NewConfig()
		cfg.Version = polysarama.DefaultVersion
		cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
		cfg.Consumer.Group.Rebalance.Retry.Backoff = 250 * time.Millisecond
		return polysarama.New(conn, cfg)
	}},
	{"kafkago", func(conn polykafka.Connection) driver.Backend {
		return kafkago.New(conn, &kafkago.Options{
			ConsumerGroup: kafka.ConsumerGroupConfig{
				HeartbeatInterval: 250 * time.Millisecond,
				JoinGroupBackoff:  250 * time.Millisecond,
			},
		})
	}},
}
