//go:build !cgo

package confluent

import (
	"context"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// Backend is the confluent backend built without cgo: confluent-kafka-go
// wraps librdkafka, a C library, so every Open* call (OpenConsumer,
// OpenProducer, OpenReader, OpenAdmin) fails with code Unimplemented. Build
// with CGO_ENABLED=1 (and a C compiler) to use it.
type Backend struct{}

// New returns a backend whose OpenConsumer and OpenProducer fail with code
// Unimplemented: this program was built without cgo, which
// confluent-kafka-go needs. With cgo, cfg is a kafka.ConfigMap; here it is
// ignored.
func New(conn polykafka.Connection, cfg any) *Backend { return &Backend{} }

// Name implements driver.Backend.
func (*Backend) Name() string { return "confluent" }

var errNoCgo = polykafka.NewError(polykafka.Unimplemented, "confluent",
	"confluent-kafka-go needs cgo: this program was built with CGO_ENABLED=0", nil)

// OpenConsumer implements driver.Backend; it always fails without cgo.
func (*Backend) OpenConsumer(context.Context, driver.ConsumerConfig) (driver.Consumer, error) {
	return nil, errNoCgo
}

// OpenProducer implements driver.Backend; it always fails without cgo.
func (*Backend) OpenProducer(context.Context, driver.ProducerConfig) (driver.Producer, error) {
	return nil, errNoCgo
}

// OpenReader implements driver.PartitionReader; it always fails without
// cgo.
func (*Backend) OpenReader(context.Context, driver.ReaderConfig) (driver.Reader, error) {
	return nil, errNoCgo
}

// OpenAdmin implements driver.Administrator; it always fails without cgo.
func (*Backend) OpenAdmin(context.Context, driver.AdminConfig) (driver.Admin, error) {
	return nil, errNoCgo
}

var (
	_ driver.Backend         = (*Backend)(nil)
	_ driver.PartitionReader = (*Backend)(nil)
	_ driver.Administrator   = (*Backend)(nil)
)
