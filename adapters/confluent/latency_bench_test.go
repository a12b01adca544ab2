//go:build cgo

package confluent_test

import (
	"testing"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/benchkit"
	"github.com/polykafka/polykafka/internal/testcluster"
)

// BenchmarkNewPartitionLatency measures the time from partition creation
// to its first record under the classic protocol and under KIP-848 (see
// benchkit.NewPartitionLatency). Run it with few iterations:
//
//	go test -run '^$' -bench NewPartitionLatency -benchtime 5x ./adapters/confluent/
func BenchmarkNewPartitionLatency(b *testing.B) {
	benchkit.NewPartitionLatency(b, testcluster.New(b), func(brokers []string) driver.Backend {
		return confluent.New(polykafka.Connection{Brokers: brokers}, nil)
	}, true)
}
