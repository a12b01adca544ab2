package crossbackend

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/producer"
)

const wait = 45 * time.Second

func logger(t *testing.T) *slog.Logger {
	if os.Getenv("POLYKAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// deliveries counts what a group handed out, by record value.
type deliveries struct {
	mu    sync.Mutex
	count map[string]int
}

func newDeliveries() *deliveries { return &deliveries{count: make(map[string]int)} }

func (d *deliveries) handler(_ context.Context, r polykafka.Record) error {
	d.mu.Lock()
	d.count[string(r.Value)]++
	d.mu.Unlock()
	return nil
}

// tally returns the values of sent never delivered and the deliveries
// beyond the first of each value.
func (d *deliveries) tally(sent []string) (lost []string, dups int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range sent {
		if d.count[v] == 0 {
			lost = append(lost, v)
		}
	}
	for _, n := range d.count {
		dups += max(n-1, 0)
	}
	return lost, dups
}

// steadyProducer writes numbered records round robin over the topic's
// partitions with the cluster's own client until stopped.
type steadyProducer struct {
	parts atomic.Int32
	mu    sync.Mutex
	sent  []string
	stop  chan struct{}
	done  chan struct{}
}

func produceSteadily(t *testing.T, cl *testcluster.Cluster, topic, tag string, partitions int32) *steadyProducer {
	p := &steadyProducer{stop: make(chan struct{}), done: make(chan struct{})}
	p.parts.Store(partitions)
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			v := fmt.Sprintf("%s-%d", tag, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cl.ProduceContext(ctx, &kgo.Record{Topic: topic, Partition: int32(i) % p.parts.Load(), Value: []byte(v)})
			cancel()
			if err != nil {
				t.Errorf("steady producer: %v", err)
				return
			}
			p.mu.Lock()
			p.sent = append(p.sent, v)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *steadyProducer) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *steadyProducer) values() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sent...)
}

// member is one running consumer of a group.
type member struct {
	backend string
	// id is the member's client id (backend-n), which the broker shows
	// next to its member id.
	id     string
	c      *consumer.Consumer
	cancel context.CancelFunc
	done   chan error
	// cl and group: where the member is, to describe the group when a
	// wait for it fails.
	cl    *testcluster.Cluster
	group string
}

// memberSeq numbers the members' client ids.
var memberSeq atomic.Int64

func startMember(t *testing.T, cl *testcluster.Cluster, b backend, group, topic string, d *deliveries) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	id := fmt.Sprintf("%s-%d", b.name, memberSeq.Add(1))
	c, err := consumer.New(ctx, b.open(polykafka.Connection{Brokers: cl.Brokers(), ClientID: id}), group, []string{topic}, &consumer.Options{
		Initial:           discovery.Earliest,
		DiscoveryInterval: 300 * time.Millisecond,
		CommitInterval:    200 * time.Millisecond,
		Logger:            logger(t),
	})
	require.NoError(t, err, "%s: consumer.New", b.name)
	rctx, rcancel := context.WithCancel(context.Background())
	m := &member{backend: b.name, id: id, c: c, cancel: rcancel, done: make(chan error, 1), cl: cl, group: group}
	go func() {
		err := c.Run(rctx, d.handler)
		if rctx.Err() == nil {
			t.Errorf("%s member stopped by itself: %v", b.name, err)
		}
		m.done <- err
	}()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop ends Run and closes the consumer (which commits and leaves); it is
// idempotent.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	select {
	case <-m.done:
	case <-time.After(wait):
		t.Errorf("%s: Run did not return within %v of its context ending", m.backend, wait)
	}
	assert.NoError(t, m.c.Close(), "%s: Close", m.backend)
}

// describeGroup says what the coordinator holds of the members' group:
// its state, and each member id with its client and host (a member id no
// live member has is one a client abandoned).
func describeGroup(ms []*member) string {
	if len(ms) == 0 {
		return "no members"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := ms[0].cl.Admin().DescribeGroups(ctx, ms[0].group)
	if err != nil {
		return "describe failed: " + err.Error()
	}
	g, ok := gs[ms[0].group]
	if !ok {
		return "not described"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state %s, protocol %s, %d members:", g.State, g.Protocol, len(g.Members))
	for _, m := range g.Members {
		fmt.Fprintf(&b, " %s (%s, %s)", m.MemberID, m.ClientID, m.ClientHost)
	}
	b.WriteString("; the live members:")
	for _, m := range ms {
		fmt.Fprintf(&b, " %s owns %v", m.id, m.c.Assignment())
	}
	return b.String()
}

// awaitOwned waits until the live members own every partition of topic
// (n partitions), each exactly once.
func awaitOwned(t *testing.T, topic string, n int32, ms ...*member) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		seen := make(map[int32][]string)
		for _, m := range ms {
			for _, tp := range m.c.Assignment() {
				if tp.Topic == topic {
					seen[tp.Partition] = append(seen[tp.Partition], m.backend)
				}
			}
		}
		ok := int32(len(seen)) == n
		for _, owners := range seen {
			ok = ok && len(owners) == 1
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("every partition of %s is assigned exactly once: after %v the owners are %v (want %d partitions); the group: %s", topic, wait, seen, n, describeGroup(ms))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitDelivered waits until every value of sent was delivered.
func awaitDelivered(t *testing.T, d *deliveries, sent []string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		lost, _ := d.tally(sent)
		if len(lost) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("0 records lost: %d of %d never delivered, first %v", len(lost), len(sent), lost[:min(5, len(lost))])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dupBound is the duplicates a clean hand-over may cause: Close and revoke
// commit what was processed, so at most the record in flight per
// partition and rebalance.
func dupBound(partitions int32, rebalances int) int { return int(partitions) * rebalances }

// One member per backend in one group: each backend leads once (on every
// broker the first member to join a new group leads it while it stays),
// every partition is assigned exactly once while records flow, the topic
// grows twice, nothing is lost and duplicates stay in the at-least-once
// window.
func TestOneMemberPerBackend(t *testing.T) {
	cl := testcluster.New(t)
	for i, leader := range backends {
		t.Run("leader="+leader.name, func(t *testing.T) {
			topic, group := cl.Topic(t, 2), cl.Group(t)
			d := newDeliveries()
			prod := produceSteadily(t, cl, topic, "r", 2)
			first := startMember(t, cl, leader, group, topic, d)
			awaitOwned(t, topic, 2, first)
			ms := []*member{first}
			for j := 1; j < len(backends); j++ {
				ms = append(ms, startMember(t, cl, backends[(i+j)%len(backends)], group, topic, d))
			}
			awaitOwned(t, topic, 2, ms...)
			for _, n := range []int32{4, int32(len(backends)) + 3} {
				cl.AddPartitions(t, topic, n)
				prod.parts.Store(n)
				awaitOwned(t, topic, n, ms...)
			}
			prod.halt()
			sent := prod.values()
			awaitDelivered(t, d, sent)
			lost, dups := d.tally(sent)
			if len(lost) > 0 {
				for _, m := range ms {
					t.Logf("%s owns %v", m.backend, m.c.Assignment())
				}
			}
			t.Logf("leader %s, %d members: %d records, %d lost, %d duplicates", leader.name, len(ms), len(sent), len(lost), dups)
			assert.Empty(t, lost, "0 records lost")
			rebalances := len(backends) + 2
			assert.LessOrEqual(t, dups, dupBound(int32(len(backends))+3, rebalances), "duplicates only inside the at-least-once window (one per partition and rebalance)")
		})
	}
}

// Rolling migration: a group of two members on A under steady production
// has its members replaced one at a time by members on B, with partitions
// added between the two replacements.
func TestRollingMigration(t *testing.T) {
	cl := testcluster.New(t)
	type result struct {
		from, to   string
		sent, dups int
		lost       int
	}
	var mu sync.Mutex
	var results []result
	t.Run("pairs", func(t *testing.T) {
		for _, a := range backends {
			for _, b := range backends {
				if a.name == b.name {
					continue
				}
				t.Run(a.name+"->"+b.name, func(t *testing.T) {
					t.Parallel()
					topic, group := cl.Topic(t, 2), cl.Group(t)
					d := newDeliveries()
					prod := produceSteadily(t, cl, topic, "m", 2)
					a1 := startMember(t, cl, a, group, topic, d)
					a2 := startMember(t, cl, a, group, topic, d)
					awaitOwned(t, topic, 2, a1, a2)
					a1.stop(t)
					b1 := startMember(t, cl, b, group, topic, d)
					awaitOwned(t, topic, 2, a2, b1)
					cl.AddPartitions(t, topic, 3)
					prod.parts.Store(3)
					awaitOwned(t, topic, 3, a2, b1)
					a2.stop(t)
					b2 := startMember(t, cl, b, group, topic, d)
					awaitOwned(t, topic, 3, b1, b2)
					prod.halt()
					sent := prod.values()
					awaitDelivered(t, d, sent)
					lost, dups := d.tally(sent)
					assert.Empty(t, lost, "0 records lost migrating %s -> %s", a.name, b.name)
					assert.LessOrEqual(t, dups, dupBound(3, 5), "duplicates only inside the at-least-once window")
					mu.Lock()
					results = append(results, result{a.name, b.name, len(sent), dups, len(lost)})
					mu.Unlock()
				})
			}
		}
	})
	sort.Slice(results, func(i, j int) bool {
		return results[i].from+results[i].to < results[j].from+results[j].to
	})
	var tab strings.Builder
	tab.WriteString("\n| from | to | records | lost | duplicates |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		fmt.Fprintf(&tab, "| %s | %s | %d | %d | %d |\n", r.from, r.to, r.sent, r.lost, r.dups)
	}
	t.Log(tab.String())
}

// Kafka's own murmur2 vectors (UtilsTest.testMurmur2 in apache/kafka):
// a key's partition is (murmur2(key) & 0x7fffffff) % partitions.
var javaMurmur2 = map[string]int32{
	"21":                         -973932308,
	"foobar":                     -790332482,
	"a-little-bit-long-string":   -985981536,
	"a-little-bit-longer-string": -1486304829,
	"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	"abc": 479470107,
}

// Producers switched between backends mid-stream keep every key on its
// partition: the partition Kafka's Java client chooses.
func TestProducerSwitchKeepsKeys(t *testing.T) {
	cl := testcluster.New(t)
	const n = 6
	topic := cl.Topic(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ps := make([]*producer.Producer, len(backends))
	for i, b := range backends {
		p, err := producer.New(ctx, b.open(polykafka.Connection{Brokers: cl.Brokers()}), &producer.Options{Logger: logger(t)})
		require.NoError(t, err, "%s: producer.New", b.name)
		t.Cleanup(func() { _ = p.Close() })
		ps[i] = p
	}
	keys := make([]string, 0, len(javaMurmur2))
	for k := range javaMurmur2 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Every key goes through every backend in turn, switching backend at
	// each record.
	for round := range backends {
		for i, k := range keys {
			bi := (round + i) % len(backends)
			r := &polykafka.Record{Topic: topic, Key: []byte(k), Value: []byte(k)}
			require.NoError(t, ps[bi].Send(ctx, r), "%s: Send", backends[bi].name)
			want := (javaMurmur2[k] & 0x7fffffff) % n
			assert.Equal(t, want, r.Partition, "%s puts key %q on partition %d, as Kafka's Java client does", backends[bi].name, k, want)
		}
	}
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("key-%d", i)
		bi := i % len(backends)
		r := &polykafka.Record{Topic: topic, Key: []byte(k), Value: []byte(k)}
		require.NoError(t, ps[bi].Send(ctx, r), "%s: Send", backends[bi].name)
		assert.Equal(t, driver.KeyPartition([]byte(k), n), r.Partition, "%s puts key %q where every other backend does", backends[bi].name, k)
	}
}

// Positions written by each backend are read by every other, with the
// commit metadata and the baseline carried.
func TestPositionsReadByEveryBackend(t *testing.T) {
	cl := testcluster.New(t)
	for _, w := range backends {
		t.Run("writer="+w.name, func(t *testing.T) {
			topic, group := cl.Topic(t, 2), cl.Group(t)
			var rs []*kgo.Record
			for i := 0; i < 10; i++ {
				rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprintf("p-%d", i))})
			}
			cl.Produce(t, rs...)
			d := newDeliveries()
			m := startMember(t, cl, w, group, topic, d)
			awaitDelivered(t, d, []string{"p-0", "p-1", "p-2", "p-3", "p-4", "p-5", "p-6", "p-7", "p-8", "p-9"})
			m.stop(t) // commits 5 and 5, with the baseline (2 partitions)
			for _, r := range backends {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				adm, ok := r.open(polykafka.Connection{Brokers: cl.Brokers()}).(driver.Administrator)
				require.True(t, ok, "%s: backend has an admin", r.name)
				a, err := adm.OpenAdmin(ctx, driver.AdminConfig{Logger: logger(t)})
				require.NoError(t, err, "%s: OpenAdmin", r.name)
				got, err := a.Committed(ctx, group, []string{topic})
				require.NoError(t, err, "%s: Committed", r.name)
				for p := int32(0); p < 2; p++ {
					c := got[polykafka.TopicPartition{Topic: topic, Partition: p}]
					assert.Equal(t, int64(5), c.Offset, "%s reads the position %s wrote for partition %d", r.name, w.name, p)
					assert.Equal(t, int32(2), offsetstore.DecodeMetadata(c.Metadata), "%s reads the baseline %s wrote for partition %d (metadata %q)", r.name, w.name, p, c.Metadata)
				}
				require.NoError(t, a.Close(ctx))
				cancel()
			}
		})
	}
}
