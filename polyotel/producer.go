package polyotel

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/producer"
)

// ProducerHook instruments producers: put it in producer.Options.Hooks.
type ProducerHook struct {
	t    *Telemetry
	sets sync.Map // polykafka.TopicPartition -> attribute.Set of a successful send
}

// Producer returns the hook for producer.Options.Hooks.
func (t *Telemetry) Producer() *ProducerHook { return &ProducerHook{t: t} }

// sentSet is the attribute set of a successful send to tp, built once per
// partition.
func (h *ProducerHook) sentSet(tp polykafka.TopicPartition) attribute.Set {
	if s, ok := h.sets.Load(tp); ok {
		return s.(attribute.Set)
	}
	s, _ := h.sets.LoadOrStore(tp, attribute.NewSet(h.t.attrs(
		semconv.MessagingOperationName("send"),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingDestinationName(tp.Topic),
		partitionID(tp.Partition),
	)...))
	return s.(attribute.Set)
}

var _ producer.HookSend = (*ProducerHook)(nil)

// OnSend implements producer.HookSend: it starts the "send <topic>" span,
// writes its context into r's headers, and returns the function that ends
// the span and records the metrics when the delivery is known.
func (h *ProducerHook) OnSend(ctx context.Context, r *polykafka.Record) func(*polykafka.Record, error) {
	t := h.t
	attrs := t.attrs(
		semconv.MessagingOperationName("send"),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingDestinationName(r.Topic),
	)
	if r.Partition >= 0 {
		attrs = append(attrs, partitionID(r.Partition))
	}
	spanAttrs := attrs
	if kv, ok := keyAttr(r.Key); ok {
		spanAttrs = append(spanAttrs[:len(spanAttrs):len(spanAttrs)], kv)
	}
	ctx, span := t.tracer.Start(ctx, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(spanAttrs...))
	t.prop.Inject(ctx, headerCarrier{r})
	began := time.Now()
	return func(r *polykafka.Record, err error) {
		took := time.Since(began)
		var set attribute.Set
		if err != nil {
			et := errorType(err)
			set = attribute.NewSet(t.attrs(
				semconv.MessagingOperationName("send"),
				semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(r.Topic),
				semconv.ErrorTypeKey.String(et),
			)...)
			span.SetAttributes(semconv.ErrorTypeKey.String(et))
			span.SetStatus(codes.Error, err.Error())
			span.RecordError(err)
		} else {
			set = h.sentSet(r.TopicPartition())
			span.SetAttributes(partitionID(r.Partition), semconv.MessagingKafkaOffset(int(r.Offset)))
		}
		span.End()
		t.sent.Add(context.Background(), 1, metricSet(set))
		t.operationDur.Record(context.Background(), seconds(took), metricSet(set))
	}
}
