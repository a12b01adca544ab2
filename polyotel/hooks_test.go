package polyotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/polyotel"
)

type telemetry struct {
	tel    *polyotel.Telemetry
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
}

func newTelemetry(t *testing.T) telemetry {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	tel, err := polyotel.New(&polyotel.Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	require.NoError(t, err)
	return telemetry{tel, spans, reader}
}

func (tt telemetry) collect(t *testing.T) metricdata.ResourceMetrics {
	var rm metricdata.ResourceMetrics
	require.NoError(t, tt.reader.Collect(context.Background(), &rm))
	return rm
}

// TestConsumerHookEvents feeds the consumer hooks the events a consumer
// reports and checks polykafka's own metrics.
func TestConsumerHookEvents(t *testing.T) {
	tt := newTelemetry(t)
	h := tt.tel.Consumer("g")
	h.OnStartDecision(discovery.Decision{TopicPartition: polykafka.TopicPartition{Topic: "t", Partition: 2}, Reason: discovery.ReasonNewPartition})
	h.OnStartDecision(discovery.Decision{TopicPartition: polykafka.TopicPartition{Topic: "t", Partition: 0}, Reason: discovery.ReasonCommitted})
	h.OnPartitionsDiscovered(discovery.Growth{Topic: "t", From: 2, To: 5})
	h.OnPartitionsAssigned(context.Background(), nil)
	h.OnPartitionsRevoked(context.Background(), nil)
	h.OnPartitionsLost(context.Background(), nil)
	h.OnCommitted(consumer.CommitResult{Duration: 3 * time.Millisecond})
	h.OnCommitted(consumer.CommitResult{Duration: time.Millisecond, Err: polykafka.NewError(polykafka.Rebalancing, "consumer: commit", "", nil)})

	rm := tt.collect(t)
	assert.Equal(t, int64(1), sumCounter(t, rm, "polykafka.consumer.start_decisions", map[string]string{"polykafka.start.reason": "new-partition"}))
	assert.Equal(t, int64(1), sumCounter(t, rm, "polykafka.consumer.start_decisions", map[string]string{"polykafka.start.reason": "committed"}))
	assert.Equal(t, int64(3), sumCounter(t, rm, "polykafka.consumer.partitions_discovered", map[string]string{"messaging.destination.name": "t"}),
		"growth from 2 to 5 partitions discovers 3")
	for _, ev := range []string{"assigned", "revoked", "lost"} {
		assert.Equal(t, int64(1), sumCounter(t, rm, "polykafka.consumer.rebalances", map[string]string{"polykafka.rebalance.event": ev}), ev)
	}
	assert.Equal(t, uint64(2), histCount(t, rm, "polykafka.consumer.commit.duration", nil))
	assert.Equal(t, int64(1), sumCounter(t, rm, "polykafka.consumer.commit.failures", map[string]string{"error.type": "rebalancing"}),
		"a failed commit is counted with its error code")
	assert.Equal(t, uint64(2), histCount(t, rm, "messaging.client.operation.duration", map[string]string{"messaging.operation.name": "commit"}))
}

// TestFailuresMarkSpans: a failed handler call and a failed send end their
// spans with status Error and error.type, and count with error.type.
func TestFailuresMarkSpans(t *testing.T) {
	tt := newTelemetry(t)
	boom := polykafka.NewError(polykafka.Unavailable, "x", "", nil)
	wrapped := tt.tel.Consumer("g").WrapHandler(func(ctx context.Context, r polykafka.Record) error {
		assert.True(t, trace.SpanContextFromContext(ctx).IsValid(), "the handler's ctx carries the span")
		return boom
	})
	err := wrapped(context.Background(), polykafka.Record{Topic: "t", Partition: 1, Offset: 7, Key: []byte{0xff, 0xfe}})
	assert.Same(t, boom, err, "the wrapper returns the handler's error as it is")
	assert.Panics(t, func() {
		_ = tt.tel.Consumer("g").WrapHandler(func(context.Context, polykafka.Record) error { panic("oops") })(context.Background(), polykafka.Record{Topic: "t"})
	}, "a handler panic goes on to the consumer, which turns it into its PanicError")

	r := &polykafka.Record{Topic: "t", Partition: -1}
	done := tt.tel.Producer().OnSend(context.Background(), r)
	require.NotNil(t, done)
	assert.NotEmpty(t, r.Headers, "the trace context is written into the headers")
	done(r, errors.New("plain"))

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range tt.spans.Ended() {
		byName[s.Name()+"/"+string(rune('0'+len(byName)))] = s
		a := attrs(s.Attributes())
		assert.Equal(t, codes.Error, s.Status().Code, "%s: status Error", s.Name())
		assert.NotEmpty(t, a["error.type"], "%s: error.type", s.Name())
		assert.NotContains(t, a, "messaging.kafka.message.key", "%s: a binary key is left out", s.Name())
	}
	assert.Len(t, byName, 3, "two process spans and one send span")
	rm := tt.collect(t)
	assert.Equal(t, int64(1), sumCounter(t, rm, "messaging.client.consumed.messages", map[string]string{"error.type": "unavailable"}))
	assert.Equal(t, int64(1), sumCounter(t, rm, "messaging.client.consumed.messages", map[string]string{"error.type": "panic"}))
	assert.Equal(t, int64(1), sumCounter(t, rm, "messaging.client.sent.messages", map[string]string{"error.type": "*errors.errorString"}))
	assert.Zero(t, sumCounter(t, rm, "polykafka.consumer.records_in_flight", nil), "in flight goes back to 0 after an error or a panic")
}
