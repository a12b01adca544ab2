// Package polyotel is polykafka's opt-in OpenTelemetry instrumentation:
// tracing and metrics that follow the OpenTelemetry messaging semantic
// conventions, the same on every backend, because they hook into the
// portable consumer and producer rather than into a client.
//
// It depends on the OpenTelemetry API only (go.opentelemetry.io/otel,
// otel/metric, otel/trace): the application chooses the SDK and the
// exporters. Packages consumer and producer never import OpenTelemetry, so
// an application that does not import polyotel compiles none of it.
//
//	tel, err := polyotel.New(&polyotel.Options{ClientID: "billing"}) // global providers
//	p, err := producer.New(ctx, b, &producer.Options{Hooks: []any{tel.Producer()}})
//	c, err := consumer.New(ctx, b, "billing", topics, &consumer.Options{Hooks: []any{tel.Consumer("billing")}})
//	reg, err := tel.ObserveLag(c) // the lag gauge; reg.Unregister() before c.Close()
//
// # Tracing
//
// The producer hook starts a "send <topic>" span of kind PRODUCER per
// record and writes its context into the record's headers through the
// propagator (W3C traceparent and baggage by default), replacing any such
// header the record had. The consumer hook starts a "process <topic>" span
// of kind CONSUMER around every handler call of Run, a child of the
// producer's context read back from the headers (or of the context Run got,
// for a record without one); the handler's ctx carries the span. RunBatch
// gets one "process <topic>" span per batch, linked to the producer context
// of each of its records. Poll hands records to no handler: use [Extract]
// to continue the trace of a polled record.
//
// Span attributes: messaging.system (kafka), messaging.operation.name
// (send, process), messaging.operation.type (send, process),
// messaging.destination.name, messaging.destination.partition.id,
// messaging.consumer.group.name, messaging.kafka.message.key (a key that
// is valid UTF-8), messaging.kafka.offset, messaging.client.id (when
// Options.ClientID is set), messaging.batch.message_count (batches) and,
// on failure, error.type (the polykafka error code's name in snake case,
// such as "unavailable", or the Go type of another error; "panic" for a
// handler panic) with the span status Error.
//
// # Metrics
//
// See the README's Observability section for the table. The OpenTelemetry
// ones: messaging.client.sent.messages, messaging.client.consumed.messages,
// messaging.process.duration and messaging.client.operation.duration (send,
// commit). polykafka's own: polykafka.consumer.start_decisions (by reason),
// polykafka.consumer.partitions_discovered,
// polykafka.consumer.rebalances (by event), polykafka.consumer.commit.duration,
// polykafka.consumer.commit.failures, polykafka.consumer.records_in_flight
// and polykafka.consumer.lag (a gauge per partition, see [Telemetry.ObserveLag]).
package polyotel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/polykafka/polykafka"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/polykafka/polykafka/polyotel"

// Options configure [New]. A nil *Options means all defaults.
type Options struct {
	// TracerProvider creates the tracer. Nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider creates the meter. Nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes and reads the trace context in record headers.
	// Nil means W3C trace context and baggage
	// (propagation.TraceContext and propagation.Baggage); pass
	// otel.GetTextMapPropagator() to use the global one.
	Propagator propagation.TextMapPropagator
	// ClientID is recorded as messaging.client.id on spans and metrics.
	// Empty means the attribute is left out. Set it to the
	// polykafka.Connection's ClientID to match what the broker sees.
	ClientID string
}

// Telemetry holds the tracer, the meter's instruments and the propagator.
// Its hooks ([Telemetry.Producer], [Telemetry.Consumer]) may serve any
// number of producers and consumers. Safe for concurrent use.
type Telemetry struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	meter  metric.Meter
	base   []attribute.KeyValue // messaging.system and messaging.client.id

	sent, consumed           metric.Int64Counter
	processDur, operationDur metric.Float64Histogram
	decisions, discovered    metric.Int64Counter
	rebalances, commitFails  metric.Int64Counter
	commitDur                metric.Float64Histogram
	inFlight                 metric.Int64UpDownCounter
	lag                      metric.Int64ObservableGauge
}

// durationBuckets are the semantic conventions' recommended boundaries for
// messaging durations, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// New creates the instruments. It fails only if the meter provider refuses
// an instrument.
func New(opts *Options) (*Telemetry, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	if o.Propagator == nil {
		o.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	t := &Telemetry{
		tracer: o.TracerProvider.Tracer(ScopeName),
		prop:   o.Propagator,
		meter:  o.MeterProvider.Meter(ScopeName),
		base:   []attribute.KeyValue{semconv.MessagingSystemKafka},
	}
	if o.ClientID != "" {
		t.base = append(t.base, semconv.MessagingClientID(o.ClientID))
	}
	m := t.meter
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	t.sent, err = m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Records the producer attempted to send, by outcome (error.type on failure)."))
	add(err)
	t.consumed, err = m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Records handed to the handler of Run or RunBatch (a retried record counts again)."))
	add(err)
	t.processDur, err = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of handler calls (one record for Run, one batch for RunBatch)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	t.operationDur, err = m.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of client operations: send (until the broker's acknowledgement) and commit."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	t.decisions, err = m.Int64Counter("polykafka.consumer.start_decisions", metric.WithUnit("{partition}"),
		metric.WithDescription("Start-offset decisions, by reason (committed, initial, new-partition, out-of-range)."))
	add(err)
	t.discovered, err = m.Int64Counter("polykafka.consumer.partitions_discovered", metric.WithUnit("{partition}"),
		metric.WithDescription("Partitions found added to a topic by partition discovery."))
	add(err)
	t.rebalances, err = m.Int64Counter("polykafka.consumer.rebalances", metric.WithUnit("{event}"),
		metric.WithDescription("Rebalance events of the member, by event (assigned, revoked, lost)."))
	add(err)
	t.commitDur, err = m.Float64Histogram("polykafka.consumer.commit.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of commits of processed offsets (error.type on failure)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	t.commitFails, err = m.Int64Counter("polykafka.consumer.commit.failures", metric.WithUnit("{commit}"),
		metric.WithDescription("Commits of processed offsets that failed, by error.type."))
	add(err)
	t.inFlight, err = m.Int64UpDownCounter("polykafka.consumer.records_in_flight", metric.WithUnit("{message}"),
		metric.WithDescription("Records inside a handler call now."))
	add(err)
	t.lag, err = m.Int64ObservableGauge("polykafka.consumer.lag", metric.WithUnit("{message}"),
		metric.WithDescription("Records written and not processed yet, per assigned partition (see Telemetry.ObserveLag)."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("polyotel: New: %w", err)
	}
	return t, nil
}

// Extract returns ctx with the trace context carried in r's headers (as
// the producer hook wrote it), for records handed out by Poll. ctx is
// returned as it is if r carries none.
func (t *Telemetry) Extract(ctx context.Context, r *polykafka.Record) context.Context {
	return t.prop.Extract(ctx, headerCarrier{r})
}

// attrs returns the base attributes followed by kvs.
func (t *Telemetry) attrs(kvs ...attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(t.base)+len(kvs))
	return append(append(out, t.base...), kvs...)
}

// errorType is the error.type of err: its polykafka error code's name in
// snake case ("unavailable", "failed_precondition"), or its Go type if it
// is not a *polykafka.Error.
func errorType(err error) string {
	var pe *polykafka.Error
	if !errors.As(err, &pe) {
		return fmt.Sprintf("%T", err)
	}
	return strings.ReplaceAll(polykafka.Code(err).String(), " ", "_")
}

// keyAttr returns messaging.kafka.message.key for a key that is valid
// UTF-8 (a binary key is left out, as the conventions say).
func keyAttr(key []byte) (attribute.KeyValue, bool) {
	if key == nil || !utf8.Valid(key) {
		return attribute.KeyValue{}, false
	}
	return semconv.MessagingKafkaMessageKey(string(key)), true
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// partitionID is messaging.destination.partition.id.
func partitionID(p int32) attribute.KeyValue {
	return semconv.MessagingDestinationPartitionID(fmt.Sprint(p))
}
