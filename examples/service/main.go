// Command service is a small, realistic polykafka service: a consumer
// group member and a producer, instrumented with package polyotel, with
// Prometheus metrics on /metrics, a health check on /healthz, the member's
// lag on /lag, JSON logs (the Kafka client's own logs included, whatever
// the backend) and a graceful shutdown on SIGTERM or Ctrl-C.
//
//	go run ./examples/service                     # embedded broker, franz-go
//	go run ./examples/service -backend sarama     # or kafkago, confluent (cgo)
//	go run ./examples/service -traces spans.json  # also write the spans
//
// With no -brokers it starts an embedded Kafka cluster (kfake), so it runs
// on a bare machine. It prints the curl commands to try.
//
// The producer writes -rate orders per second to the topic "orders"
// (created with 3 partitions if missing), under a "place-order" span; the
// consumer processes them (a few milliseconds of work each). Every record
// carries its trace context in its headers, so each "process orders" span
// is a child of the "send orders" span of its record.
//
// # Health
//
// /healthz answers 503 "starting" until the member has partitions, then
// 200 "ok", and 503 "stopping" from the moment a shutdown begins (or the
// consumer stops on an error), so that a load balancer or Kubernetes stops
// routing to it first.
//
// # Shutdown
//
// On SIGTERM or Ctrl-C: the health check fails; the producer stops and
// flushes what it has buffered; the consumer stops fetching, finishes the
// record in flight, commits what was processed and leaves the group (Run's
// context is cancelled, then Close); the lag gauge is unregistered; the
// HTTP server drains; the spans are flushed. A restarted service resumes
// right after the last processed record.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/adapters/kafkago"
	polysarama "github.com/polykafka/polykafka/adapters/sarama"
	"github.com/polykafka/polykafka/admin"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/polyotel"
	"github.com/polykafka/polykafka/producer"
)

const (
	topic      = "orders"
	group      = "order-service"
	partitions = 3
)

// config is the service's command line.
type config struct {
	brokers, backend, addr, traces string
	rate                           int
	logLevel                       slog.Level
}

func main() {
	var cfg config
	flag.StringVar(&cfg.brokers, "brokers", "", "comma-separated bootstrap brokers; empty starts an embedded cluster")
	flag.StringVar(&cfg.backend, "backend", "franz", "polykafka backend: franz, kafkago, sarama, confluent (needs cgo)")
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "HTTP listen address for /metrics, /healthz and /lag")
	flag.StringVar(&cfg.traces, "traces", "", "file to write the spans to, as JSON (empty: spans are made but not exported)")
	flag.IntVar(&cfg.rate, "rate", 20, "orders produced per second (1 to 10000)")
	flag.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "log level: DEBUG shows the Kafka client's routine logs too")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if _, err := run(ctx, cfg, os.Stdout, logger, nil); err != nil {
		logger.Error("service failed", "err", err)
		os.Exit(1)
	}
}

// summary is what a run did, for its test.
type summary struct {
	Produced, Processed int64
	// Committed is the sum over the partitions of the group's committed
	// positions after the shutdown.
	Committed int64
}

// run runs the service until ctx is done. It prints the curl commands to
// out, logs to logger, and calls listening (if not nil) with the HTTP
// address once it serves.
func run(ctx context.Context, cfg config, out io.Writer, logger *slog.Logger, listening func(addr string)) (summary, error) {
	var sum summary
	if cfg.rate < 1 || cfg.rate > 10000 {
		return sum, fmt.Errorf("-rate %d: must be between 1 and 10000", cfg.rate)
	}
	seeds := strings.Split(cfg.brokers, ",")
	if cfg.brokers == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
		if err != nil {
			return sum, fmt.Errorf("start embedded cluster: %w", err)
		}
		defer cluster.Close()
		seeds = cluster.ListenAddrs()
		logger.Info("embedded Kafka cluster started", "brokers", seeds)
	}
	if err := ensureTopic(ctx, seeds); err != nil {
		return sum, err
	}
	b, err := newBackend(cfg.backend, seeds)
	if err != nil {
		return sum, err
	}

	// OpenTelemetry: metrics to Prometheus through the OTel exporter, spans
	// to a JSON file if asked. polyotel itself only sees the API.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return sum, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	var tpOpts []sdktrace.TracerProviderOption
	if cfg.traces != "" {
		f, err := os.Create(cfg.traces)
		if err != nil {
			return sum, err
		}
		defer f.Close()
		exp, err := stdouttrace.New(stdouttrace.WithWriter(f), stdouttrace.WithPrettyPrint())
		if err != nil {
			return sum, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tel, err := polyotel.New(&polyotel.Options{TracerProvider: tp, MeterProvider: mp, ClientID: group})
	if err != nil {
		return sum, err
	}

	var health health
	p, err := producer.New(ctx, b, &producer.Options{Logger: logger, Hooks: []any{tel.Producer()}})
	if err != nil {
		return sum, err
	}
	defer p.Close()
	c, err := consumer.New(ctx, b, group, []string{topic}, &consumer.Options{
		Initial: discovery.Earliest,
		Logger:  logger,
		Hooks:   []any{tel.Consumer(group), &health},
	})
	if err != nil {
		return sum, err
	}
	defer c.Close()
	lagReg, err := tel.ObserveLag(c)
	if err != nil {
		return sum, err
	}
	defer func() { _ = lagReg.Unregister() }()

	srv, addr, err := serve(cfg.addr, reg, &health, c, logger)
	if err != nil {
		return sum, err
	}
	printHelp(out, addr, cfg.backend)
	if listening != nil {
		listening(addr)
	}

	// The consumer: Run until the shutdown cancels runCtx.
	var processed atomic.Int64
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runDone := make(chan error, 1)
	go func() {
		runDone <- c.Run(runCtx, func(ctx context.Context, r polykafka.Record) error {
			time.Sleep(time.Duration(1+len(r.Value)%4) * time.Millisecond) // the "work"
			processed.Add(1)
			logger.DebugContext(ctx, "order processed", "partition", r.Partition, "offset", r.Offset,
				"trace_id", trace.SpanContextFromContext(ctx).TraceID().String())
			return nil
		})
	}()
	// The producer: -rate orders per second until ctx is done.
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var acked atomic.Int64
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		produce(prodCtx, p, tp.Tracer("order-service"), cfg.rate, &acked, logger)
	}()

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutdown: signal received; failing the health check")
	case runErr = <-runDone:
		logger.Error("shutdown: the consumer stopped", "err", runErr)
	}
	health.stopping.Store(true)
	stopProducing()
	<-prodDone
	if err := p.Close(); err != nil { // flushes: every callback has run
		logger.Warn("shutdown: producer close", "err", err)
	}
	sum.Produced = acked.Load()
	logger.Info("shutdown: producer flushed and closed", "produced", sum.Produced)
	stopRun() // stop fetching; Run returns once the record in flight is done
	if runErr == nil {
		runErr = <-runDone
	}
	_ = lagReg.Unregister()
	if err := c.Close(); err != nil { // commits what was processed, leaves the group
		logger.Warn("shutdown: consumer close", "err", err)
	}
	sum.Processed = processed.Load()
	logger.Info("shutdown: consumer committed and left the group", "processed", sum.Processed)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()

	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if g, err := admin.Lag(lctx, b, group, []string{topic}, nil); err == nil {
		for _, r := range g.Rows {
			sum.Committed += max(r.Current, 0)
		}
		fmt.Fprintf(out, "\nafter shutdown:\n%s", g)
	} else {
		logger.Warn("shutdown: admin.Lag", "err", err)
	}
	return sum, runErr
}

// produce sends rate orders per second until ctx is done, counting the
// acknowledged ones in acked.
func produce(ctx context.Context, p *producer.Producer, tracer trace.Tracer, rate int, acked *atomic.Int64, logger *slog.Logger) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, span := tracer.Start(ctx, "place-order")
		r := &polykafka.Record{Topic: topic, Key: fmt.Appendf(nil, "customer-%d", i%17), Value: fmt.Appendf(nil, `{"order":%d}`, i)}
		p.SendAsync(sctx, r, func(r *polykafka.Record, err error) {
			if err != nil {
				logger.Warn("order not sent", "err", err)
				return
			}
			acked.Add(1)
		})
		span.End()
	}
}

// health is the /healthz state, fed by the consumer's rebalance hooks.
type health struct {
	assigned atomic.Int64 // partitions owned
	stopping atomic.Bool
}

// OnPartitionsAssigned implements consumer.HookAssigned.
func (h *health) OnPartitionsAssigned(_ context.Context, tps []polykafka.TopicPartition) {
	h.assigned.Add(int64(len(tps)))
}

// OnPartitionsRevoked implements consumer.HookRevoked.
func (h *health) OnPartitionsRevoked(_ context.Context, tps []polykafka.TopicPartition) {
	h.assigned.Add(-int64(len(tps)))
}

// OnPartitionsLost implements consumer.HookLost.
func (h *health) OnPartitionsLost(_ context.Context, tps []polykafka.TopicPartition) {
	h.assigned.Add(-int64(len(tps)))
}

// ServeHTTP answers 200 "ok" while the member owns partitions and no
// shutdown began, 503 otherwise. A member of a group with more members
// than partitions owns none and stays "starting": that is the truth.
func (h *health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	switch {
	case h.stopping.Load():
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	case h.assigned.Load() <= 0:
		http.Error(w, "starting: no partition assigned yet", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// serve starts the HTTP server and returns it with its address.
func serve(addr string, reg *prometheus.Registry, h *health, c *consumer.Consumer, logger *slog.Logger) (*http.Server, string, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/healthz", h)
	mux.HandleFunc("/lag", func(w http.ResponseWriter, r *http.Request) {
		lags, err := c.Lag(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(lags)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

func printHelp(out io.Writer, addr, backend string) {
	fmt.Fprintf(out, `order-service on backend %s: consuming and producing %q as group %q
try:
  curl -s http://%s/healthz
  curl -s http://%s/metrics | grep -E '^(messaging|polykafka)_'
  curl -s http://%s/lag
stop with Ctrl-C or: kill -TERM %d
`, backend, topic, group, addr, addr, addr, os.Getpid())
}

// newBackend selects the polykafka backend by name.
func newBackend(name string, seeds []string) (driver.Backend, error) {
	conn := polykafka.Connection{Brokers: seeds, ClientID: group}
	switch name {
	case "franz":
		return franz.New(conn), nil
	case "kafkago":
		return kafkago.New(conn, nil), nil
	case "sarama":
		return polysarama.New(conn, nil), nil
	case "confluent":
		return confluent.New(conn, nil), nil
	}
	return nil, fmt.Errorf("-backend %q: unknown (available: franz, kafkago, sarama, confluent)", name)
}

// ensureTopic creates the topic with a neutral admin client if it is
// missing, and waits until its partitions are visible.
func ensureTopic(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil && md.Topics[topic].Err == nil && len(md.Topics[topic].Partitions) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s not visible after 30s", topic)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
