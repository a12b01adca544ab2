package polyotel

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
)

// ConsumerHook instruments one consumer group's members: put it in
// consumer.Options.Hooks of consumers of that group.
type ConsumerHook struct {
	t     *Telemetry
	group string
	parts sync.Map // polykafka.TopicPartition -> *partAttrs
}

// partAttrs are the attributes of one partition's process spans and
// metrics, built once: an attribute.Set sorts and allocates.
type partAttrs struct {
	kvs []attribute.KeyValue
	set attribute.Set
}

// Consumer returns the hook for consumer.Options.Hooks of members of
// group; group is recorded as messaging.consumer.group.name.
func (t *Telemetry) Consumer(group string) *ConsumerHook { return &ConsumerHook{t: t, group: group} }

var (
	_ consumer.HookHandler              = (*ConsumerHook)(nil)
	_ consumer.HookBatchHandler         = (*ConsumerHook)(nil)
	_ consumer.HookStartDecision        = (*ConsumerHook)(nil)
	_ consumer.HookAssigned             = (*ConsumerHook)(nil)
	_ consumer.HookRevoked              = (*ConsumerHook)(nil)
	_ consumer.HookLost                 = (*ConsumerHook)(nil)
	_ consumer.HookPartitionsDiscovered = (*ConsumerHook)(nil)
	_ consumer.HookCommitted            = (*ConsumerHook)(nil)
)

func metricSet(s attribute.Set) metric.MeasurementOption { return metric.WithAttributeSet(s) }

// processAttrs are the attributes of a process span and its metrics. The
// slice is shared: append to a clipped copy.
func (h *ConsumerHook) processAttrs(tp polykafka.TopicPartition) *partAttrs {
	if pa, ok := h.parts.Load(tp); ok {
		return pa.(*partAttrs)
	}
	kvs := h.t.attrs(
		semconv.MessagingOperationName("process"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(tp.Topic),
		partitionID(tp.Partition),
		semconv.MessagingConsumerGroupName(h.group),
	)
	pa, _ := h.parts.LoadOrStore(tp, &partAttrs{kvs: slices.Clip(kvs), set: attribute.NewSet(kvs...)})
	return pa.(*partAttrs)
}

// WrapHandler implements consumer.HookHandler: every handler call gets a
// "process <topic>" span, a child of the producer's context, and is
// counted and timed.
func (h *ConsumerHook) WrapHandler(next consumer.Handler) consumer.Handler {
	t := h.t
	return func(ctx context.Context, r polykafka.Record) error {
		pa := h.processAttrs(r.TopicPartition())
		set := pa.set
		spanAttrs := append(pa.kvs, semconv.MessagingKafkaOffset(int(r.Offset)))
		if kv, ok := keyAttr(r.Key); ok {
			spanAttrs = append(spanAttrs, kv)
		}
		pctx := t.prop.Extract(ctx, headerCarrier{&r})
		ctx, span := t.tracer.Start(pctx, "process "+r.Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(spanAttrs...))
		return h.around(ctx, span, set, 1, func() error { return next(ctx, r) })
	}
}

// WrapBatchHandler implements consumer.HookBatchHandler: every batch gets
// one "process <topic>" span linked to the producer context of each of
// its records.
func (h *ConsumerHook) WrapBatchHandler(next consumer.BatchHandler) consumer.BatchHandler {
	t := h.t
	return func(ctx context.Context, rs []polykafka.Record) error {
		if len(rs) == 0 {
			return next(ctx, rs)
		}
		pa := h.processAttrs(rs[0].TopicPartition())
		set := pa.set
		spanAttrs := append(pa.kvs, semconv.MessagingBatchMessageCount(len(rs)))
		links := make([]trace.Link, 0, len(rs))
		for i := range rs {
			sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), headerCarrier{&rs[i]}))
			if sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{semconv.MessagingKafkaOffset(int(rs[i].Offset))}})
			}
		}
		ctx, span := t.tracer.Start(ctx, "process "+rs[0].Topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(spanAttrs...), trace.WithLinks(links...))
		return h.around(ctx, span, set, int64(len(rs)), func() error { return next(ctx, rs) })
	}
}

// around runs fn (n records) inside span, counting and timing it.
func (h *ConsumerHook) around(ctx context.Context, span trace.Span, set attribute.Set, n int64, fn func() error) (err error) {
	t := h.t
	t.inFlight.Add(ctx, n, metricSet(set))
	began := time.Now()
	defer func() {
		took := time.Since(began)
		t.inFlight.Add(ctx, -n, metricSet(set))
		p := recover()
		mset := set
		if err != nil {
			et := errorType(err)
			span.SetAttributes(semconv.ErrorTypeKey.String(et))
			span.SetStatus(codes.Error, err.Error())
			span.RecordError(err)
			mset = attribute.NewSet(append(set.ToSlice(), semconv.ErrorTypeKey.String(et))...)
		} else if p != nil {
			span.SetAttributes(semconv.ErrorTypeKey.String("panic"))
			span.SetStatus(codes.Error, "handler panicked")
			mset = attribute.NewSet(append(set.ToSlice(), semconv.ErrorTypeKey.String("panic"))...)
		}
		span.End()
		t.consumed.Add(ctx, n, metricSet(mset))
		t.processDur.Record(ctx, seconds(took), metricSet(mset))
		if p != nil {
			panic(p) // the consumer turns it into its PanicError
		}
	}()
	return fn()
}

// OnStartDecision implements consumer.HookStartDecision.
func (h *ConsumerHook) OnStartDecision(d discovery.Decision) {
	h.t.decisions.Add(context.Background(), 1, metric.WithAttributes(
		semconv.MessagingConsumerGroupName(h.group),
		semconv.MessagingDestinationName(d.Topic),
		attribute.String("polykafka.start.reason", string(d.Reason)),
	))
}

// OnPartitionsDiscovered implements consumer.HookPartitionsDiscovered.
func (h *ConsumerHook) OnPartitionsDiscovered(g discovery.Growth) {
	h.t.discovered.Add(context.Background(), int64(g.To-g.From), metric.WithAttributes(
		semconv.MessagingConsumerGroupName(h.group),
		semconv.MessagingDestinationName(g.Topic),
	))
}

func (h *ConsumerHook) rebalance(ctx context.Context, event string) {
	h.t.rebalances.Add(ctx, 1, metric.WithAttributes(
		semconv.MessagingConsumerGroupName(h.group),
		attribute.String("polykafka.rebalance.event", event),
	))
}

// OnPartitionsAssigned implements consumer.HookAssigned.
func (h *ConsumerHook) OnPartitionsAssigned(ctx context.Context, _ []polykafka.TopicPartition) {
	h.rebalance(ctx, "assigned")
}

// OnPartitionsRevoked implements consumer.HookRevoked.
func (h *ConsumerHook) OnPartitionsRevoked(ctx context.Context, _ []polykafka.TopicPartition) {
	h.rebalance(ctx, "revoked")
}

// OnPartitionsLost implements consumer.HookLost.
func (h *ConsumerHook) OnPartitionsLost(ctx context.Context, _ []polykafka.TopicPartition) {
	h.rebalance(ctx, "lost")
}

// OnCommitted implements consumer.HookCommitted: the commit's duration
// (polykafka.consumer.commit.duration and messaging.client.operation.duration
// with messaging.operation.name=commit) and its failures.
func (h *ConsumerHook) OnCommitted(c consumer.CommitResult) {
	t := h.t
	kvs := []attribute.KeyValue{semconv.MessagingConsumerGroupName(h.group)}
	if c.Err != nil {
		kvs = append(kvs, semconv.ErrorTypeKey.String(errorType(c.Err)))
		t.commitFails.Add(context.Background(), 1, metric.WithAttributes(kvs...))
	}
	t.commitDur.Record(context.Background(), seconds(c.Duration), metric.WithAttributes(kvs...))
	op := t.attrs(append(kvs, semconv.MessagingOperationName("commit"), semconv.MessagingOperationTypeSettle)...)
	t.operationDur.Record(context.Background(), seconds(c.Duration), metric.WithAttributes(op...))
}

// ObserveLag registers c's lag as the gauge polykafka.consumer.lag, one
// point per assigned partition (End - Processed, see consumer.Lag), read
// at each collection: each collection costs c one ListOffsets round trip.
// Unregister the returned registration before closing c; a closed
// consumer reports no points.
func (t *Telemetry) ObserveLag(c *consumer.Consumer) (metric.Registration, error) {
	group := c.Group()
	return t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		lags, err := c.Lag(ctx)
		if err != nil {
			if polykafka.Code(err) == polykafka.Closed {
				return nil
			}
			return err
		}
		for _, l := range lags {
			o.ObserveInt64(t.lag, l.Lag, metric.WithAttributes(
				semconv.MessagingSystemKafka,
				semconv.MessagingConsumerGroupName(group),
				semconv.MessagingDestinationName(l.Topic),
				partitionID(l.Partition),
			))
		}
		return nil
	}, t.lag)
}
