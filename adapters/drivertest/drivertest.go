// Package drivertest is the conformance suite every polykafka adapter runs.
// It drives the portable types (consumer.Consumer, producer.Producer) over
// the adapter under test against a real Kafka protocol peer: an in-process
// kfake cluster, or the cluster in KAFKA_BROKERS. An adapter passes the
// suite before it is considered done; third-party adapters run it too:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, drivertest.Harness{
//			Name: "mybackend",
//			NewBackend: func(t *testing.T, brokers []string) driver.Backend { ... },
//			Connect: func(t *testing.T, conn polykafka.Connection) driver.Backend { ... },
//			CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) { ... },
//		})
//	}
//
// Each case is named after the behaviour it checks and fails with the rule
// it enforces.
package drivertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

// Harness describes the adapter under test.
type Harness struct {
	// Name is the backend's name, as Backend.Name returns it.
	Name string
	// NewBackend returns a backend on brokers. It should shorten the
	// client's heartbeat interval (about 250ms) so group tests do not wait
	// for 3s heartbeats, and must not set anything that changes semantics.
	NewBackend func(t *testing.T, brokers []string) driver.Backend
	// Connect returns a backend that reaches the cluster through conn
	// (TLS, SASL), configured otherwise as NewBackend configures it.
	// Required: the SecureConnection case opens its backends with it.
	Connect func(t *testing.T, conn polykafka.Connection) driver.Backend
	// Transactions says the backend implements transactions
	// (driver.Transactor); without it the suite checks that a
	// transactional producer fails with Unimplemented.
	Transactions bool
	// StableOffsets says a read-committed consumer of the backend, as
	// NewBackend configures it, fetches its start positions with KIP-447's
	// require_stable; without it the suite skips the case that needs it,
	// saying so (the README's capability matrix says which backends lack
	// it and why).
	StableOffsets bool
	// Reader says the backend reads without a group
	// (driver.PartitionReader); without it the suite checks that
	// consumer.NewReader fails with Unimplemented.
	Reader bool
	// CheckAs checks the As escape hatch of a consumer and a producer
	// opened on the backend: it should assert that each exposes the native
	// client.
	CheckAs func(t *testing.T, c *consumer.Consumer, p *producer.Producer)
	// Store, when set, returns the store every consumer of a case uses
	// unless the case sets Options.Store itself: one store per case, shared
	// by its consumers (so a restarted consumer finds the positions of the
	// one before). It runs the suite, the start-offset guarantee included,
	// with positions kept outside Kafka; what a case reads as "committed"
	// is then read from this store. The few cases that check the Kafka
	// store itself (commits in Kafka, faults injected into OffsetCommit,
	// transactional offsets) skip, saying so. Nil means the default store:
	// the group's commits in Kafka.
	Store func(t *testing.T) offsetstore.Store
	// GroupProtocol is the group protocol of every group member of the
	// run (consumer.Options.GroupProtocol). An adapter whose backend has
	// KIP-848 runs the suite a second time with GroupProtocolConsumer.
	// Cases that hold under one protocol only skip under the other,
	// saying why. With KAFKA_BROKERS set and GroupProtocolConsumer, the
	// run skips, saying so, when the cluster does not serve KIP-848's
	// ConsumerGroupHeartbeat v1.
	GroupProtocol consumer.GroupProtocol
	// KIP848 says the backend implements GroupProtocolConsumer; without
	// it the suite checks that consumer.New with it fails with
	// Unimplemented, naming the option.
	KIP848 bool
}

// serialCases run one at a time, before the parallel cases start: cases
// whose measure the other cases' load would blur.
var serialCases = map[string]bool{"CloseMembersOneByOne": true}

type testCase struct {
	name string
	rule string
	run  func(t *testing.T, e *env)
}

// Run runs the conformance suite, one subtest per behaviour.
func Run(t *testing.T, h Harness) {
	require.NotNil(t, h.NewBackend, "Harness.NewBackend is required")
	if h.GroupProtocol == consumer.GroupProtocolConsumer {
		require.True(t, h.KIP848, "Harness.GroupProtocol is consumer: set Harness.KIP848")
		if ok, why := testcluster.New(t).KIP848(t); !ok {
			t.Skipf("the cluster cannot run the suite with GroupProtocol consumer: %s", why)
		}
	}
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			if !serialCases[tc.name] {
				t.Parallel()
			}
			e := newEnv(t, h, tc.rule)
			tc.run(t, e)
		})
	}
}

// env is what one case works with.
type env struct {
	t       *testing.T
	h       Harness
	rule    string
	cluster *testcluster.Cluster
	backend driver.Backend
	logger  *slog.Logger
	// store is Harness.Store's store for this case, or nil for the Kafka
	// store.
	store offsetstore.Store
}

func newEnv(t *testing.T, h Harness, rule string) *env {
	cl := testcluster.New(t)
	var logger *slog.Logger
	if os.Getenv("POLYKAFKA_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	} else {
		th := &testHandler{t: t, ended: new(logGate)}
		t.Cleanup(th.ended.close)
		logger = slog.New(th)
	}
	e := &env{t: t, h: h, rule: rule, cluster: cl, backend: h.NewBackend(t, cl.Brokers()), logger: logger}
	if h.Store != nil {
		e.store = h.Store(t)
		require.NotNil(t, e.store, "Harness.Store returned a nil store")
	}
	return e
}

// ctx returns a context bounded by d that ends with the test.
func (e *env) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	e.t.Cleanup(cancel)
	return ctx
}

// consumerOpts fills in test defaults: a fast discovery interval, the
// env's logger, and Harness.Store's store.
func (e *env) consumerOpts(o *consumer.Options) *consumer.Options {
	var out consumer.Options
	if o != nil {
		out = *o
	}
	if out.Store == nil && e.store != nil {
		out.Store = e.store
	}
	if out.GroupProtocol == consumer.GroupProtocolClassic {
		out.GroupProtocol = e.h.GroupProtocol
	}
	if out.DiscoveryInterval == 0 {
		out.DiscoveryInterval = 300 * time.Millisecond
	}
	if out.CommitInterval == 0 {
		out.CommitInterval = 200 * time.Millisecond
	}
	if out.Logger == nil {
		out.Logger = e.logger
	}
	return &out
}

// positions returns the stored positions of group in topic: from
// Harness.Store's store if set, else the group's commits in Kafka (with
// the baseline decoded from their metadata).
func (e *env) positions(t *testing.T, group, topic string) map[int32]offsetstore.Position {
	t.Helper()
	if e.store != nil {
		got, err := e.store.Load(e.ctx(10*time.Second), group, topic)
		require.NoError(t, err, "Load(%q, %q) from Harness.Store's store", group, topic)
		return got
	}
	out := make(map[int32]offsetstore.Position)
	for p, r := range e.cluster.Committed(t, group, topic) {
		out[p] = offsetstore.Position{Offset: r.At, Baseline: offsetstore.DecodeMetadata(r.Metadata)}
	}
	return out
}

// kafkaStoreOnly marks a case that checks the Kafka store itself: with
// Harness.Store set it skips, as the suite without Harness.Store runs it.
func kafkaStoreOnly(why string, run func(*testing.T, *env)) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		if e.store != nil {
			t.Skip("checks the Kafka store itself (" + why + "); it runs in the suite without Harness.Store")
		}
		run(t, e)
	}
}

// classicOnly marks a case that holds only under the classic group
// protocol: under GroupProtocolConsumer it skips, saying why.
func classicOnly(why string, run func(*testing.T, *env)) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		if e.h.GroupProtocol != consumer.GroupProtocolClassic {
			t.Skip("holds under the classic group protocol only (" + why + "); it runs in the classic run")
		}
		run(t, e)
	}
}

// onceOnly marks a case that neither the group protocol nor the store
// changes: it runs in the classic run without Harness.Store only.
func onceOnly(why string, run func(*testing.T, *env)) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		if e.h.GroupProtocol != consumer.GroupProtocolClassic || e.store != nil {
			t.Skip("runs once per backend, in the classic run without Harness.Store (" + why + ")")
		}
		run(t, e)
	}
}

// kip848Only marks a case about the consumer group protocol (KIP-848):
// under the classic protocol it skips, saying why, except on a backend
// without KIP-848, where it checks that consumer.New fails with
// Unimplemented naming Options.GroupProtocol.
func kip848Only(run func(*testing.T, *env)) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		if !e.h.KIP848 {
			topic := e.cluster.Topic(t, 1)
			_, err := consumer.New(e.ctx(wait), e.backend, e.cluster.Group(t), []string{topic},
				e.consumerOpts(&consumer.Options{GroupProtocol: consumer.GroupProtocolConsumer}))
			requireCode(t, e, err, polykafka.Unimplemented, "New with GroupProtocol consumer on a backend without KIP-848", "Options.GroupProtocol")
			return
		}
		if e.h.GroupProtocol != consumer.GroupProtocolConsumer {
			t.Skip("holds under the consumer group protocol (KIP-848) only; it runs in the run with Harness.GroupProtocol consumer")
		}
		run(t, e)
	}
}

// noGroup marks a case about reading without a group, which no group
// protocol changes: it runs in the classic run only.
func noGroup(run func(*testing.T, *env)) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		if e.h.GroupProtocol != consumer.GroupProtocolClassic {
			t.Skip("a reader has no consumer group, so the group protocol does not apply; it runs in the classic run")
		}
		run(t, e)
	}
}

// newConsumer opens a consumer and closes it at the end of the test.
func (e *env) newConsumer(group string, topics []string, o *consumer.Options) *consumer.Consumer {
	e.t.Helper()
	c, err := consumer.New(e.ctx(30*time.Second), e.backend, group, topics, e.consumerOpts(o))
	require.NoError(e.t, err, "consumer.New")
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// newProducer opens a producer and closes it at the end of the test.
func (e *env) newProducer(o *producer.Options) *producer.Producer {
	e.t.Helper()
	var opts producer.Options
	if o != nil {
		opts = *o
	}
	if opts.Logger == nil {
		opts.Logger = e.logger
	}
	if opts.DiscoveryInterval == 0 {
		opts.DiscoveryInterval = 300 * time.Millisecond
	}
	p, err := producer.New(e.ctx(30*time.Second), e.backend, &opts)
	require.NoError(e.t, err, "producer.New")
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

// sink collects what a consumer handed out, by partition, and counts each
// record's deliveries.
type sink struct {
	mu    sync.Mutex
	recs  map[polykafka.TopicPartition][]polykafka.Record
	count map[string]int // "topic/p@offset" -> deliveries
}

func newSink() *sink {
	return &sink{recs: make(map[polykafka.TopicPartition][]polykafka.Record), count: make(map[string]int)}
}

func (s *sink) add(r polykafka.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.TopicPartition()] = append(s.recs[r.TopicPartition()], r)
	s.count[fmt.Sprintf("%s@%d", r.TopicPartition(), r.Offset)]++
}

// handler records every record it is given and returns nil.
func (s *sink) handler(_ context.Context, r polykafka.Record) error {
	s.add(r)
	return nil
}

// values returns the distinct values received, in no particular order.
func (s *sink) values() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool)
	for _, rs := range s.recs {
		for _, r := range rs {
			out[string(r.Value)] = true
		}
	}
	return out
}

// offsets returns the offsets received on tp, in delivery order.
func (s *sink) offsets(tp polykafka.TopicPartition) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, r := range s.recs[tp] {
		out = append(out, r.Offset)
	}
	return out
}

func (s *sink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rs := range s.recs {
		n += len(rs)
	}
	return n
}

// missing returns the values of want that were not received, sorted.
func (s *sink) missing(want []string) []string {
	got := s.values()
	var out []string
	for _, v := range want {
		if !got[v] {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// run runs c.Run(ctx, h) in a goroutine until the test ends (or the
// consumer is closed) and returns a channel with Run's result.
func (e *env) run(c *consumer.Consumer, h consumer.Handler) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- c.Run(ctx, h)
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			e.t.Errorf("Run did not return within 30s of its context being cancelled")
		}
	})
	return done
}

// eventually waits up to d for cond, polling every 20ms, and fails the test
// with msg (and the rule) if it never holds.
func (e *env) eventually(d time.Duration, cond func() bool, msg string, args ...any) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s (waited %v)", e.rule, fmt.Sprintf(msg, args...), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventuallyf is eventually with a message computed when it fails, so
// that it shows the state at the end of the wait.
func (e *env) eventuallyf(d time.Duration, cond func() bool, msg func() string) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s (waited %v)", e.rule, msg(), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assigned waits until the consumers together own every partition of
// topic (n partitions), each exactly once.
func (e *env) assigned(d time.Duration, topic string, n int32, cs ...*consumer.Consumer) {
	e.t.Helper()
	e.eventually(d, func() bool {
		seen := make(map[int32]int)
		for _, c := range cs {
			for _, tp := range c.Assignment() {
				if tp.Topic == topic {
					seen[tp.Partition]++
				}
			}
		}
		if int32(len(seen)) != n {
			return false
		}
		for _, k := range seen {
			if k != 1 {
				return false
			}
		}
		return true
	}, "the group did not come to own all %d partitions of %s", n, topic)
}

// testHandler sends slog output to t.Log, so it shows only for failing
// tests (or with -v).
type testHandler struct {
	t     *testing.T
	attrs []slog.Attr
	ended *logGate
}

// logGate drops the logs of clients that outlive their case: t.Log after
// the test's cleanups have run races with the test's end (the race
// detector reports it in package testing), and a client's goroutines may
// still log while their Close returns in the background.
type logGate struct {
	mu   sync.Mutex
	done bool
}

func (g *logGate) close() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
}

func (h *testHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.ended.mu.Lock()
	defer h.ended.mu.Unlock()
	if !h.ended.done {
		h.t.Log(b.String())
	}
	return nil
}

func (h *testHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testHandler{t: h.t, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), ended: h.ended}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }
