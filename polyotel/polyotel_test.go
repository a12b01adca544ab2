package polyotel_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/polyotel"
	"github.com/polykafka/polykafka/producer"
)

// backends are the backends the test runs on; confluent adds itself in a
// cgo-only file.
var backends = map[string]func(brokers []string) driver.Backend{
	"franz": func(brokers []string) driver.Backend {
		return franz.New(polykafka.Connection{Brokers: brokers}, kgo.HeartbeatInterval(250*time.Millisecond),
			kgo.FetchMaxWait(500*time.Millisecond))
	},
	"sarama": func(brokers []string) driver.Backend {
		cfg := sarama.NewConfig()
		cfg.Version = polysarama.DefaultVersion
		cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
		return polysarama.New(polykafka.Connection{Brokers: brokers}, cfg)
	},
	"kafkago": func(brokers []string) driver.Backend {
		return kafkago.New(polykafka.Connection{Brokers: brokers}, &kafkago.Options{
			ConsumerGroup: kafka.ConsumerGroupConfig{HeartbeatInterval: 250 * time.Millisecond, JoinGroupBackoff: 250 * time.Millisecond},
		})
	},
}

// TestProduceConsume sends records through an instrumented producer and
// reads them with an instrumented consumer (Run), then with a second group
// (RunBatch), on every backend, and checks the spans (names, kinds,
// attributes, parent or links across produce and consume) and that the
// metrics count exactly the records.
func TestProduceConsume(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testProduceConsume(t, nb)
		})
	}
}

const n = 12

func testProduceConsume(t *testing.T, newBackend func([]string) driver.Backend) {
	cl := testcluster.New(t)
	topic := cl.Topic(t, 2)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tel, err := polyotel.New(&polyotel.Options{TracerProvider: tp, MeterProvider: mp, ClientID: "test-client"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := newBackend(cl.Brokers())

	// Produce n keyed records under an application span.
	p, err := producer.New(ctx, b, &producer.Options{Hooks: []any{tel.Producer()}})
	require.NoError(t, err)
	appCtx, appSpan := tp.Tracer("app").Start(ctx, "app")
	for i := range n {
		r := &polykafka.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)),
			Headers: []polykafka.Header{{Key: "app", Value: []byte("x")}}}
		require.NoError(t, p.Send(appCtx, r))
		assert.Len(t, r.Headers, 1, "the hook must not write into the caller's headers")
	}
	appSpan.End()
	require.NoError(t, p.Close())

	// Consume them with Run.
	group := cl.Group(t)
	c, err := consumer.New(ctx, b, group, []string{topic}, &consumer.Options{
		Initial: discovery.Earliest, CommitInterval: 100 * time.Millisecond, Hooks: []any{tel.Consumer(group)},
	})
	require.NoError(t, err)
	reg, err := tel.ObserveLag(c)
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[string]trace.SpanContext{}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(rctx, func(ctx context.Context, r polykafka.Record) error {
			mu.Lock()
			defer mu.Unlock()
			seen[string(r.Value)] = trace.SpanContextFromContext(ctx)
			return nil
		})
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n }, 30*time.Second, 20*time.Millisecond,
		"every record reaches the handler")
	// Wait for the commit of every record, then check the lag gauge reads 0.
	require.Eventually(t, func() bool {
		lags, err := c.Lag(ctx)
		if err != nil || len(lags) != 2 {
			return false
		}
		for _, l := range lags {
			if l.CommittedLag != 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "processed records are committed")
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	lag := gaugePoints(t, rm, "polykafka.consumer.lag")
	assert.Len(t, lag, 2, "one lag point per assigned partition")
	for _, v := range lag {
		assert.Zero(t, v, "lag is 0 once every record was processed")
	}
	require.NoError(t, reg.Unregister())
	rcancel()
	require.NoError(t, <-done)
	require.NoError(t, c.Close())

	// Consume them again with RunBatch, in another group.
	group2 := cl.Group(t) + "-batch"
	c2, err := consumer.New(ctx, b, group2, []string{topic}, &consumer.Options{
		Initial: discovery.Earliest, Hooks: []any{tel.Consumer(group2)},
	})
	require.NoError(t, err)
	var batched sync.Map
	var count sync.WaitGroup
	count.Add(n)
	bctx, bcancel := context.WithCancel(ctx)
	go func() {
		done <- c2.RunBatch(bctx, func(ctx context.Context, rs []polykafka.Record) error {
			for _, r := range rs {
				if _, dup := batched.LoadOrStore(string(r.Value), trace.SpanContextFromContext(ctx)); !dup {
					count.Done()
				}
			}
			return nil
		})
	}()
	waitGroup(t, &count, 30*time.Second, "every record reaches the batch handler")
	bcancel()
	require.NoError(t, <-done)
	require.NoError(t, c2.Close())

	// Spans.
	sendByValue := map[string]sdktrace.ReadOnlySpan{}
	var process, batches []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		switch s.Name() {
		case "send " + topic:
			assert.Equal(t, trace.SpanKindProducer, s.SpanKind())
			assert.Equal(t, appSpan.SpanContext().SpanID(), s.Parent().SpanID(), "a send span is a child of the caller's span")
			a := attrs(s.Attributes())
			assert.Equal(t, "kafka", a["messaging.system"])
			assert.Equal(t, "send", a["messaging.operation.name"])
			assert.Equal(t, "send", a["messaging.operation.type"])
			assert.Equal(t, topic, a["messaging.destination.name"])
			assert.Equal(t, "test-client", a["messaging.client.id"])
			assert.NotEmpty(t, a["messaging.destination.partition.id"])
			assert.NotEmpty(t, a["messaging.kafka.offset"])
			require.Contains(t, a, "messaging.kafka.message.key")
			sendByValue[a["messaging.destination.partition.id"]+"/"+a["messaging.kafka.offset"]] = s
		case "process " + topic:
			a := attrs(s.Attributes())
			assert.Equal(t, trace.SpanKindConsumer, s.SpanKind())
			assert.Equal(t, "process", a["messaging.operation.name"])
			assert.Equal(t, "process", a["messaging.operation.type"])
			assert.Equal(t, topic, a["messaging.destination.name"])
			assert.Equal(t, "kafka", a["messaging.system"])
			assert.NotEmpty(t, a["messaging.destination.partition.id"])
			if _, ok := a["messaging.batch.message_count"]; ok {
				assert.Equal(t, group2, a["messaging.consumer.group.name"])
				batches = append(batches, s)
			} else {
				assert.Equal(t, group, a["messaging.consumer.group.name"])
				assert.Contains(t, a, "messaging.kafka.message.key")
				process = append(process, s)
			}
		}
	}
	require.Len(t, sendByValue, n, "one send span per record")
	require.Len(t, process, n, "one process span per record handled by Run")
	for _, s := range process {
		a := attrs(s.Attributes())
		send, ok := sendByValue[a["messaging.destination.partition.id"]+"/"+a["messaging.kafka.offset"]]
		require.True(t, ok, "a process span names the partition and offset of a sent record")
		assert.Equal(t, send.SpanContext().TraceID(), s.SpanContext().TraceID(), "produce and process are one trace")
		assert.Equal(t, send.SpanContext().SpanID(), s.Parent().SpanID(), "a process span is a child of the record's send span")
		assert.True(t, s.Parent().IsRemote(), "the parent came through the record headers")
	}
	for v, sc := range seen {
		assert.True(t, sc.IsValid(), "the handler's ctx carries the process span (record %s)", v)
	}
	linked := 0
	for _, s := range batches {
		a := attrs(s.Attributes())
		cnt, _ := strconv.Atoi(a["messaging.batch.message_count"])
		require.Len(t, s.Links(), cnt, "a batch span links to the send span of each of its records")
		for _, l := range s.Links() {
			found := false
			for _, send := range sendByValue {
				found = found || send.SpanContext().SpanID() == l.SpanContext.SpanID()
			}
			assert.True(t, found, "a batch link points to a send span")
			linked++
		}
	}
	assert.Equal(t, n, linked, "the batch spans link to every record once")

	// Metrics.
	rm = metricdata.ResourceMetrics{}
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, int64(n), sumCounter(t, rm, "messaging.client.sent.messages", nil), "sent.messages counts the records sent")
	assert.Equal(t, int64(n), sumCounter(t, rm, "messaging.client.consumed.messages", map[string]string{"messaging.consumer.group.name": group}),
		"consumed.messages counts the records handled by Run")
	assert.Equal(t, int64(n), sumCounter(t, rm, "messaging.client.consumed.messages", map[string]string{"messaging.consumer.group.name": group2}),
		"consumed.messages counts the records handled by RunBatch")
	assert.Equal(t, uint64(n), histCount(t, rm, "messaging.process.duration", map[string]string{"messaging.consumer.group.name": group}),
		"one process duration per Run handler call")
	assert.Equal(t, uint64(n), histCount(t, rm, "messaging.client.operation.duration", map[string]string{"messaging.operation.name": "send"}),
		"one send duration per record")
	assert.Equal(t, int64(2), sumCounter(t, rm, "polykafka.consumer.start_decisions", map[string]string{"messaging.consumer.group.name": group, "polykafka.start.reason": "initial"}),
		"one initial start decision per partition")
	assert.GreaterOrEqual(t, sumCounter(t, rm, "polykafka.consumer.rebalances", map[string]string{"polykafka.rebalance.event": "assigned"}), int64(2),
		"each group's assignment is counted")
	assert.Positive(t, histCount(t, rm, "polykafka.consumer.commit.duration", map[string]string{"messaging.consumer.group.name": group}),
		"commits are timed")
	assert.Zero(t, sumCounter(t, rm, "polykafka.consumer.commit.failures", nil), "no commit failed")
	assert.Zero(t, sumCounter(t, rm, "polykafka.consumer.records_in_flight", nil), "nothing is in flight after the handlers returned")
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

func matches(s attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := s.Value(attribute.Key(k))
		if !ok || got.String() != v {
			return false
		}
	}
	return true
}

func find(t *testing.T, rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

func sumCounter(t *testing.T, rm metricdata.ResourceMetrics, name string, want map[string]string) int64 {
	t.Helper()
	m, ok := find(t, rm, name)
	if !ok {
		return 0
	}
	s, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is an int64 sum", name)
	var total int64
	for _, dp := range s.DataPoints {
		if matches(dp.Attributes, want) {
			total += dp.Value
		}
	}
	return total
}

func histCount(t *testing.T, rm metricdata.ResourceMetrics, name string, want map[string]string) uint64 {
	t.Helper()
	m, ok := find(t, rm, name)
	require.True(t, ok, "%s is recorded", name)
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a float64 histogram", name)
	var total uint64
	for _, dp := range h.DataPoints {
		if matches(dp.Attributes, want) {
			total += dp.Count
		}
	}
	return total
}

func gaugePoints(t *testing.T, rm metricdata.ResourceMetrics, name string) map[string]int64 {
	t.Helper()
	m, ok := find(t, rm, name)
	require.True(t, ok, "%s is recorded", name)
	g, ok := m.Data.(metricdata.Gauge[int64])
	require.True(t, ok, "%s is an int64 gauge", name)
	out := map[string]int64{}
	for _, dp := range g.DataPoints {
		id, _ := dp.Attributes.Value("messaging.destination.partition.id")
		out[fmt.Sprint(id.String())] = dp.Value
	}
	return out
}

func TestMain(m *testing.M) {
	// go-metrics starts one process-wide meter goroutine the first time a
	// sarama client registers a meter, and never stops it.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
