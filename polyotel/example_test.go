package polyotel_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/polyotel"
	"github.com/polykafka/polykafka/producer"
)

// Example traces one record from the producer to the consumer's handler:
// the handler's ctx carries the "process" span, a child of the record's
// "send" span, in the same trace. It runs on an in-process Kafka cluster
// (or the one named by KAFKA_BROKERS).
func Example() {
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

	spans := tracetest.NewSpanRecorder()
	tel, err := polyotel.New(&polyotel.Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
	})
	if err != nil {
		log.Fatal(err)
	}

	p, err := producer.New(ctx, backend, &producer.Options{Hooks: []any{tel.Producer()}})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte("apple")}); err != nil {
		log.Fatal(err)
	}
	_ = p.Close()

	group := fmt.Sprintf("billing-%d", time.Now().UnixNano())
	c, err := consumer.New(ctx, backend, group, []string{topic},
		&consumer.Options{Initial: discovery.Earliest, Hooks: []any{tel.Consumer(group)}})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var handled trace.SpanContext
	_ = c.Run(runCtx, func(ctx context.Context, r polykafka.Record) error {
		handled = trace.SpanContextFromContext(ctx)
		stop()
		return nil
	})
	_ = c.Close()

	ended := spans.Ended()
	for _, s := range ended {
		fmt.Println(s.SpanKind(), strings.Replace(s.Name(), topic, "<topic>", 1))
	}
	send, process := ended[0], ended[1]
	fmt.Println("same trace:", send.SpanContext().TraceID() == process.SpanContext().TraceID())
	fmt.Println("process is a child of send:", process.Parent().SpanID() == send.SpanContext().SpanID())
	fmt.Println("the handler's ctx carries the process span:", handled.SpanID() == process.SpanContext().SpanID())
	// Output:
	// producer send <topic>
	// consumer process <topic>
	// same trace: true
	// process is a child of send: true
	// the handler's ctx carries the process span: true
}
