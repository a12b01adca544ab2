//go:build cgo

package main

import (
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
)

// confluent-kafka-go needs cgo: the backend exists only in cgo builds.
func init() {
	backends["confluent"] = func(brokers []string) driver.Backend {
		return confluent.New(polykafka.Connection{Brokers: brokers}, kafka.ConfigMap{})
	}
}
