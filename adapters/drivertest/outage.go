package drivertest

// Outages made by cutting every connection between the clients and an
// in-process broker (internal/netcut): the delivery timeout's contract.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// outageCut is how long an outage case holds the cut at least: 10s, or
// POLYKAFKA_OUTAGE_CUT (a time.Duration, e.g. 15s as in issue 18). It is
// longer than every client's native retry budget (sarama 3 retries of
// 100ms, kafka-go 10 attempts of up to 1s), so that a backend that did not
// derive its retries from DeliveryTimeout fails records.
func outageCut(t *testing.T) time.Duration {
	if s := os.Getenv("POLYKAFKA_OUTAGE_CUT"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "POLYKAFKA_OUTAGE_CUT")
		return d
	}
	return 10 * time.Second
}

// deliveries records each callback of a set of records.
type deliveries struct {
	mu    sync.Mutex
	calls map[string]int
	errs  map[string]error
	at    map[string]time.Duration
	start time.Time
}

func newDeliveries() *deliveries {
	return &deliveries{calls: map[string]int{}, errs: map[string]error{}, at: map[string]time.Duration{}, start: time.Now()}
}

func (d *deliveries) cb(r *polykafka.Record, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := string(r.Value)
	d.calls[v]++
	d.errs[v] = err
	d.at[v] = time.Since(d.start)
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}

func (d *deliveries) failed() map[string]error {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]error{}
	for v, err := range d.errs {
		if err != nil {
			out[v] = err
		}
	}
	return out
}

func testOutageDeliveryTimeout(t *testing.T, e *env) {
	if testcluster.External() {
		t.Skip("cuts connections to an in-process broker: a real cluster advertises addresses the test cannot cut")
	}
	cl, sw := testcluster.NewCuttable(t)
	b := e.h.NewBackend(t, cl.Brokers())
	topic := cl.Topic(t, 3)
	const short = 3 * time.Second
	open := func(dt time.Duration) *producer.Producer {
		p, err := producer.New(e.ctx(30*time.Second), b, &producer.Options{
			DeliveryTimeout: dt, Logger: e.logger, DiscoveryInterval: -1, CloseTimeout: 10 * time.Second})
		require.NoError(t, err, "producer.New")
		t.Cleanup(func() { _ = p.Close() })
		// A first record loads the topic's metadata and connects.
		require.NoError(t, p.Send(e.ctx(30*time.Second), &polykafka.Record{Topic: topic, Value: []byte(fmt.Sprintf("warm-%v", dt))}),
			"Send before the outage")
		return p
	}
	long, shrt := open(2*time.Minute), open(short)

	const n = 30
	dl, ds := newDeliveries(), newDeliveries()
	cut := outageCut(t)
	sw.Cut()
	cutAt := time.Now()
	for i := range n {
		long.SendAsync(context.Background(), &polykafka.Record{Topic: topic, Key: []byte{byte(i)}, Value: []byte(fmt.Sprintf("long-%d", i))}, dl.cb)
		shrt.SendAsync(context.Background(), &polykafka.Record{Topic: topic, Key: []byte{byte(i)}, Value: []byte(fmt.Sprintf("short-%d", i))}, ds.cb)
	}
	// Records with a 3s delivery timeout fail during the outage, each
	// once, as Unavailable, within about the timeout.
	e.eventually(short+45*time.Second, func() bool { return ds.count() == n },
		"%s: every record with DeliveryTimeout %v gets its callback during an outage longer than it", e.rule, short)
	for v, err := range ds.errs {
		if assert.Error(t, err, "%s: record %s was acknowledged while every connection was cut", e.rule, v) {
			assert.Equal(t, polykafka.Unavailable, polykafka.Code(err), "%s: record %s failed by the delivery timeout: code of %q", e.rule, v, err)
		}
	}
	for time.Since(cutAt) < cut {
		time.Sleep(100 * time.Millisecond) // holding the outage, not waiting for a condition
	}
	early := dl.failed()
	sw.Restore()

	// Records with a 2-minute delivery timeout outlive the outage: each is
	// acknowledged, once.
	e.eventually(90*time.Second, func() bool { return dl.count() == n },
		"%s: every record with DeliveryTimeout 2m gets its callback after an outage of %v", e.rule, cut)
	assert.Empty(t, early, "%s: records with DeliveryTimeout 2m failed during an outage of %v (shorter than the timeout)", e.rule, cut)
	assert.Empty(t, dl.failed(), "%s: records with DeliveryTimeout 2m failed after an outage of %v", e.rule, cut)
	// The client reconnects on its own backoff (librdkafka's reaches
	// seconds after a long cut), which may outlast one 3s delivery timeout:
	// the producer must send again, not necessarily at its first try.
	var lastErr error
	e.eventuallyf(30*time.Second, func() bool {
		lastErr = shrt.Send(e.ctx(10*time.Second), &polykafka.Record{Topic: topic, Value: []byte("after")})
		return lastErr == nil
	}, func() string {
		return fmt.Sprintf("the producer whose records timed out sends again once the broker is back: %v", lastErr)
	})
	require.NoError(t, long.Flush(e.ctx(30*time.Second)), "Flush")
	for _, d := range []*deliveries{dl, ds} {
		for v, c := range d.calls {
			assert.Equal(t, 1, c, "%s: callback of %s ran %d times", e.rule, v, c)
		}
	}

	// Nothing acknowledged is lost; duplicates (a retry of a request the
	// cut interrupted after the broker wrote it) are bounded by the
	// records in flight.
	seen := readAll(t, e, cl, topic, n+3)
	for i := range n {
		assert.GreaterOrEqual(t, seen[fmt.Sprintf("long-%d", i)], 1, "%s: acknowledged record long-%d is not in the topic", e.rule, i)
		assert.Zero(t, seen[fmt.Sprintf("short-%d", i)], "%s: record short-%d failed but is in the topic", e.rule, i)
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("outage %v: sent %d+%d, acknowledged %d, failed %d (Unavailable), duplicates %d", cut, n, n, n-len(dl.failed()), len(ds.failed()), dups)
	assert.LessOrEqual(t, dups, n, "%s: duplicates are bounded by the records in flight", e.rule)
}

// readAll reads topic from the start with a plain franz-go client until it
// has at least want records (or 30s passed) and counts each value.
func readAll(t *testing.T, e *env, cl *testcluster.Cluster, topic string, want int) map[string]int {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(cl.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer c.Close()
	seen := map[string]int{}
	total := 0
	ctx := e.ctx(30 * time.Second)
	for total < want && ctx.Err() == nil {
		fs := c.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	// Whatever else is already there (duplicates).
	ctx2, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.PollFetches(ctx2).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	return seen
}

func testOutageConsumerResumes(t *testing.T, e *env) {
	if testcluster.External() {
		t.Skip("cuts connections to an in-process broker: a real cluster advertises addresses the test cannot cut")
	}
	cl, sw := testcluster.NewCuttable(t)
	b := e.h.NewBackend(t, cl.Brokers())
	topic := cl.Topic(t, 3)
	p, err := producer.New(e.ctx(30*time.Second), b, &producer.Options{Logger: e.logger, DiscoveryInterval: -1})
	require.NoError(t, err, "producer.New")
	t.Cleanup(func() { _ = p.Close() })
	group := cl.Group(t)
	c, err := consumer.New(e.ctx(30*time.Second), b, group, []string{topic},
		e.consumerOpts(&consumer.Options{Initial: discovery.Earliest}))
	require.NoError(t, err, "consumer.New")
	t.Cleanup(func() { _ = c.Close() })
	s := newSink()
	done := e.run(c, s.handler)

	var want []string
	send := func(prefix string, n int) {
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			want = append(want, v)
			require.NoError(t, p.Send(e.ctx(2*time.Minute), &polykafka.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}),
				"%s: Send of %s (across the outage: DeliveryTimeout is 2 min)", e.rule, v)
		}
	}
	send("before", 30)
	e.eventually(60*time.Second, func() bool { return len(s.missing(want)) == 0 }, "%s: records sent before the outage are read", e.rule)
	e.eventually(60*time.Second, func() bool {
		var n int64
		for _, r := range cl.Committed(t, group, topic) {
			n += r.At
		}
		return n == int64(len(want))
	}, "%s: records read before the outage are committed (CommitInterval)", e.rule)
	sw.Cut()
	cut := outageCut(t)
	cutAt := time.Now()
	go func() {
		for time.Since(cutAt) < cut {
			time.Sleep(100 * time.Millisecond) // holding the outage
		}
		_ = sw.Restore()
	}()
	send("during", 30) // each waits for the broker to come back
	select {
	case err := <-done:
		t.Fatalf("%s: the consumer stopped during an outage of %v: %v (code %v)", e.rule, cut, err, polykafka.Code(err))
	default:
	}
	e.eventually(90*time.Second, func() bool { return len(s.missing(want)) == 0 },
		"%s: the consumer reads on after an outage of %v", e.rule, cut)
	dups := s.total() - len(want)
	t.Logf("consumer across an outage of %v: read %d records, %d redelivered", cut, s.total(), dups)
	assert.LessOrEqual(t, dups, len(want), "%s: redeliveries after an outage are bounded", e.rule)
}
