package main

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

// backends maps a backend name to its constructor, configured as the
// cross-backend tests configure it (internal/crossbackend): short group
// heartbeats, so that churn rebalances in seconds, and nothing that changes
// semantics. backends_cgo.go adds confluent in cgo builds. Each member and
// the producer get their own backend, as separate processes would.
var backends = map[string]func(brokers []string) driver.Backend{
	"franz": func(brokers []string) driver.Backend {
		return franz.New(polykafka.Connection{Brokers: brokers},
			kgo.HeartbeatInterval(250*time.Millisecond),
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.FetchMaxWait(500*time.Millisecond))
	},
	"sarama": func(brokers []string) driver.Backend {
		cfg := sarama.NewConfig()
		cfg.Version = polysarama.DefaultVersion
		cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
		cfg.Consumer.Group.Rebalance.Retry.Backoff = 250 * time.Millisecond
		return polysarama.New(polykafka.Connection{Brokers: brokers}, cfg)
	},
	"kafkago": func(brokers []string) driver.Backend {
		return kafkago.New(polykafka.Connection{Brokers: brokers}, &kafkago.Options{
			ConsumerGroup: kafka.ConsumerGroupConfig{
				HeartbeatInterval: 250 * time.Millisecond,
				JoinGroupBackoff:  250 * time.Millisecond,
			},
		})
	},
}
