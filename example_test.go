package polykafka_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// The examples run on an in-process Kafka cluster (or the one named by
// KAFKA_BROKERS). Topic and group names carry a time stamp so that they are
// new on every run.

// Example_errors inspects the error of a consumer created for a topic that
// does not exist, in the three ways every polykafka error supports: its
// code (polykafka.Code, or errors.Is with a sentinel), the portable
// *polykafka.Error, and the backend's native error (here franz-go's
// *kerr.Error) through errors.As.
func Example_errors() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	missing := fmt.Sprintf("no-such-topic-%d", time.Now().UnixNano())
	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	_, err = consumer.New(ctx, franz.New(polykafka.Connection{Brokers: cluster.Brokers()}), group, []string{missing}, nil)

	fmt.Println("code:", polykafka.Code(err))
	fmt.Println("not found:", errors.Is(err, polykafka.ErrNotFound))
	fmt.Println("retryable:", polykafka.IsRetryable(err))
	var pe *polykafka.Error
	if errors.As(err, &pe) {
		fmt.Println("operation:", pe.Op)
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		fmt.Println("kafka error:", ke.Message, ke.Code)
	}

	// Output:
	// code: not found
	// not found: true
	// retryable: false
	// operation: consumer: New
	// kafka error: UNKNOWN_TOPIC_OR_PARTITION 3
}

// ExampleRecord_As reaches the backend's own representation of a consumed
// record: a *kgo.Record on the franz-go backend, with every field franz-go
// has (leader epoch, producer id, attributes, ...). Each adapter lists its
// type in its package doc under "# As".
func ExampleRecord_As() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := testcluster.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	if err := cluster.CreateTopic(ctx, topic, 1); err != nil {
		log.Fatal(err)
	}
	backend := franz.New(polykafka.Connection{Brokers: cluster.Brokers()})

	p, err := producer.New(ctx, backend, nil)
	if err != nil {
		log.Fatal(err)
	}
	sent := &polykafka.Record{Topic: topic, Key: []byte("k"), Value: []byte("hello"),
		Headers: []polykafka.Header{{Key: "trace", Value: []byte("abc")}}}
	if err := p.Send(ctx, sent); err != nil {
		log.Fatal(err)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic}, &consumer.Options{Initial: discovery.Earliest})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
		defer stop()
		var kr *kgo.Record
		if !r.As(&kr) {
			return errors.New("not a franz-go record")
		}
		fmt.Printf("%T: value %s, offset %d, header %s=%s\n", kr, kr.Value, kr.Offset, kr.Headers[0].Key, kr.Headers[0].Value)
		var s string
		fmt.Println("as a string:", r.As(&s))
		return nil
	})
	stop()
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}

	// Output:
	// *kgo.Record: value hello, offset 0, header trace=abc
	// as a string: false
}

// ExampleConnection describes how to reach a cluster with TLS and SASL, in
// terms every backend understands. Backends validate it when they open a
// client; Validate reports the first invalid field.
func ExampleConnection() {
	conn := polykafka.Connection{
		Brokers:  []string{"kafka-1.example.com:9093", "kafka-2.example.com:9093"},
		ClientID: "billing",
		TLS:      &tls.Config{MinVersion: tls.VersionTLS12},
		SASL: &polykafka.SASL{
			Mechanism: polykafka.SASLScramSHA512,
			Username:  "billing",
			Password:  "secret",
		},
	}
	fmt.Println("valid:", conn.Validate())
	_ = franz.New(conn) // or any other backend: only this line changes

	bad := conn
	bad.SASL = &polykafka.SASL{Mechanism: "GSSAPI", Username: "billing"}
	err := bad.Validate()
	fmt.Println(err)
	fmt.Println("invalid argument:", errors.Is(err, polykafka.ErrInvalidArgument))

	bad = conn
	bad.Brokers = []string{"kafka-1.example.com"}
	fmt.Println(bad.Validate())

	// Output:
	// valid: <nil>
	// polykafka: Connection.SASL.Mechanism: unknown mechanism "GSSAPI" (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) (invalid argument)
	// invalid argument: true
	// polykafka: Connection.Brokers[0]: "kafka-1.example.com" is not host:port (invalid argument)
}
