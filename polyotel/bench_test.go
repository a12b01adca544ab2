package polyotel_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/polyotel"
)

// BenchmarkHandlerHook is the cost per record of the consumer hook around
// an empty handler, with the SDK recording every span and metric (the
// worst case: always sampled, nothing exported).
func BenchmarkHandlerHook(b *testing.B) {
	tel, err := polyotel.New(&polyotel.Options{
		TracerProvider: sdktrace.NewTracerProvider(),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
	})
	if err != nil {
		b.Fatal(err)
	}
	h := tel.Consumer("g").WrapHandler(func(context.Context, polykafka.Record) error { return nil })
	r := polykafka.Record{Topic: "orders", Partition: 3, Offset: 42, Key: []byte("customer-7"),
		Headers: []polykafka.Header{{Key: "traceparent", Value: []byte("00-4288b82fdb1508a8ad736583620d0aeb-186958169a6c352e-01")}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = h(ctx, r)
	}
}

// BenchmarkSendHook is the cost per record of the producer hook (span,
// header injection, delivery metrics).
func BenchmarkSendHook(b *testing.B) {
	tel, err := polyotel.New(&polyotel.Options{
		TracerProvider: sdktrace.NewTracerProvider(),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
	})
	if err != nil {
		b.Fatal(err)
	}
	hook := tel.Producer()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := polykafka.Record{Topic: "orders", Partition: -1, Key: []byte("customer-7")}
		done := hook.OnSend(ctx, &r)
		r.Partition, r.Offset = 3, 42
		done(&r, nil)
	}
}
