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

// backend is one adapter, configured as its own conformance harness is:
// short heartbeats, nothing that changes semantics.
type backend struct {
	name string
	open func(brokers []string) driver.Backend
}

// backends lists the adapters under test; confluent_test.go adds
// confluent in cgo builds.
var backends = []backend{
	{"franz", func(brokers []string) driver.Backend {
		return franz.New(polykafka.Connection{Brokers: brokers},
			kgo.HeartbeatInterval(250*time.Millisecond),
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.FetchMaxWait(500*time.Millisecond))
	}},
	{"sarama", func(brokers []string) driver.Backend {
		cfg := sarama.NewConfig()
		cfg.Version = polysarama.DefaultVersion
		cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
		cfg.Consumer.Group.Rebalance.Retry.Backoff = 250 * time.Millisecond
		return polysarama.New(polykafka.Connection{Brokers: brokers}, cfg)
	}},
	{"kafkago", func(brokers []string) driver.Backend {
		return kafkago.New(polykafka.Connection{Brokers: brokers}, &kafkago.Options{
			ConsumerGroup: kafka.ConsumerGroupConfig{
				HeartbeatInterval: 250 * time.Millisecond,
				JoinGroupBackoff:  250 * time.Millisecond,
			},
		})
	}},
}
