//go:build cgo

package crossbackend

import (
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
)

func init() {
	backends = append(backends, backend{"confluent", func(conn polykafka.Connection) driver.Backend {
		return confluent.New(conn, kafka.ConfigMap{
			"heartbeat.interval.ms": 250,
			"session.timeout.ms":    6000,
		})
	}})
}
