// Package testcluster gives tests a Kafka cluster: an in-process kfake
// cluster of 3 brokers by default, or the cluster named by KAFKA_BROKERS
// (comma-separated host:port) when set. Tests use only what a real Apache
// Kafka 3.x broker does: topics are created explicitly (auto-creation is
// off), metadata is awaited after CreateTopics and CreatePartitions, and
// names are unique per test.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka/internal/netcut"
)

// Cluster is a Kafka cluster for one test.
type Cluster struct {
	brokers []string
	fake    *kfake.Cluster
	cl      *kgo.Client
	manual  *kgo.Client // producer honouring each record's partition
	adm     *kadm.Client

	mu     sync.Mutex
	topics []string
}

// External reports whether tests run against KAFKA_BROKERS rather than an
// in-process cluster.
func External() bool { return os.Getenv("KAFKA_BROKERS") != "" }

// New returns a cluster for tb, closed (and its topics deleted, on an
// external cluster) when tb ends.
func New(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := Start()
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// NewKIP848Heartbeat returns an in-process cluster whose KIP-848
// heartbeat interval (group.consumer.heartbeat.interval.ms) is hb instead
// of the tests' 250ms, for benchmarks that measure what it costs. It is
// for kfake only: callers skip it when External reports true.
func NewKIP848Heartbeat(tb testing.TB, hb time.Duration) *Cluster {
	tb.Helper()
	c, err := startOn(nil, strconv.FormatInt(hb.Milliseconds(), 10))
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Start returns a cluster for a program (the examples): kfake unless
// KAFKA_BROKERS is set. The caller closes it.
func Start() (*Cluster, error) {
	var brokers []string
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		brokers = strings.Split(env, ",")
	}
	return StartOn(brokers)
}

// StartOn is Start on the cluster at brokers, or on a new in-process kfake
// cluster when brokers is empty. The caller closes it.
func StartOn(brokers []string) (*Cluster, error) { return startOn(brokers, "250") }

// NewCuttable returns an in-process cluster (whatever KAFKA_BROKERS says:
// a real cluster advertises addresses a test cannot cut) whose connections
// the returned switch cuts and restores, closed when tb ends.
func NewCuttable(tb testing.TB) (*Cluster, *netcut.Switch) {
	tb.Helper()
	sw := netcut.NewSwitch()
	c, err := startOn(nil, "250", kfake.ListenFn(sw.Listen))
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c, sw
}

// startOn connects to brokers, or, if brokers is empty, starts kfake with
// opts and the given KIP-848 heartbeat interval in milliseconds.
func startOn(brokers []string, kip848Heartbeat string, opts ...kfake.Opt) (*Cluster, error) {
	return startWith(brokers, kip848Heartbeat, nil, opts...)
}

// startWith is startOn whose own clients have clientOpts too (TLS, SASL).
func startWith(brokers []string, kip848Heartbeat string, clientOpts []kgo.Opt, opts ...kfake.Opt) (*Cluster, error) {
	c := &Cluster{}
	if len(brokers) > 0 {
		c.brokers = brokers
	} else {
		fake, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3),
			// KIP-848 members learn of assignment changes from their
			// heartbeats, whose interval the broker sets (5s by
			// default, as in Kafka): shortened for tests, as the
			// adapters shorten the classic protocol's client-side one.
			kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": kip848Heartbeat})}, opts...)...)
		if err != nil {
			return nil, fmt.Errorf("start kfake: %w", err)
		}
		c.fake = fake
		c.brokers = fake.ListenAddrs()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.MetadataMinAge(100 * time.Millisecond)}, clientOpts...)...)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.cl = cl
	c.adm = kadm.NewClient(cl)
	c.manual, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MetadataMinAge(100 * time.Millisecond)}, clientOpts...)...)
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Brokers returns the bootstrap addresses.
func (c *Cluster) Brokers() []string { return c.brokers }

// Admin returns an admin client on the cluster.
func (c *Cluster) Admin() *kadm.Client { return c.adm }

// Client returns a plain franz-go client on the cluster, for producing
// test data and reading state independently of the code under test.
func (c *Cluster) Client() *kgo.Client { return c.cl }

// Fake returns the in-process cluster, or nil on an external one.
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// Close releases the cluster; on an external cluster it deletes the topics
// this Cluster created.
func (c *Cluster) Close() {
	if c.adm != nil && c.fake == nil {
		c.mu.Lock()
		topics := c.topics
		c.mu.Unlock()
		if len(topics) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, _ = c.adm.DeleteTopics(ctx, topics...)
			cancel()
		}
	}
	if c.manual != nil {
		c.manual.Close()
	}
	if c.cl != nil {
		c.cl.Close()
	}
	if c.fake != nil {
		c.fake.Close()
	}
}

var seq atomic.Int64
var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Name returns a name unique to this test and process: kind, the test
// name, a time stamp and a counter.
func Name(tb testing.TB, kind string) string {
	n := unsafeName.ReplaceAllString(tb.Name(), "_")
	if len(n) > 120 {
		n = n[len(n)-120:]
	}
	return fmt.Sprintf("pk-%s-%s-%d-%d", kind, n, time.Now().UnixNano()%1e9, seq.Add(1))
}

// KIP848 reports whether the cluster serves KIP-848's consumer group
// protocol (ConsumerGroupHeartbeat v1, as Kafka 4.0 ships it), and if not,
// why. kfake does; a real cluster does from Kafka 4.0 with "consumer" in
// group.coordinator.rebalance.protocols.
func (c *Cluster) KIP848(tb testing.TB) (bool, string) {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, c.cl)
	if err != nil {
		return false, fmt.Sprintf("ApiVersions: %v", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return false, fmt.Sprintf("ApiVersions: %v", err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == kmsg.ConsumerGroupHeartbeat.Int16() {
			if k.MaxVersion >= 1 {
				return true, ""
			}
			return false, fmt.Sprintf("the brokers serve ConsumerGroupHeartbeat up to v%d only; KIP-848 needs v1 (Kafka 4.0+)", k.MaxVersion)
		}
	}
	return false, "the brokers do not serve ConsumerGroupHeartbeat (KIP-848): use Kafka 4.0+ with \"consumer\" in group.coordinator.rebalance.protocols"
}

// Group returns a unique group id for tb.
func (c *Cluster) Group(tb testing.TB) string { return Name(tb, "g") }

func ctxFor(testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// Topic creates a topic with partitions partitions and a unique name, and
// waits until the cluster's metadata shows it.
func (c *Cluster) Topic(tb testing.TB, partitions int32) string {
	tb.Helper()
	name := Name(tb, "t")
	ctx, cancel := ctxFor(tb)
	defer cancel()
	if err := c.CreateTopic(ctx, name, partitions); err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	return name
}

// CreateTopic is Topic for programs and examples, which have no
// testing.TB: it creates topic name with partitions partitions (replicated
// on every broker of the in-process cluster, once on an external one),
// and waits until the cluster's metadata shows each partition with a
// leader, or ctx is done. The caller chooses a unique name. On an
// external cluster, Close deletes the topic.
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions int32) error {
	rf := int16(1)
	if c.fake != nil {
		rf = int16(min(3, len(c.fake.ListenAddrs())))
	}
	resp, err := c.adm.CreateTopic(ctx, partitions, rf, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	c.mu.Lock()
	c.topics = append(c.topics, name)
	c.mu.Unlock()
	return c.awaitPartitions(ctx, name, partitions)
}

// AddPartitions grows topic to total partitions and waits until the
// cluster's metadata shows them.
func (c *Cluster) AddPartitions(tb testing.TB, topic string, total int32) {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	resp, err := c.adm.UpdatePartitions(ctx, int(total), topic)
	if err == nil {
		var r kadm.CreatePartitionsResponse
		if r, err = resp.On(topic, nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		tb.Fatalf("testcluster: grow %s to %d partitions: %v", topic, total, err)
	}
	c.AwaitPartitions(tb, topic, total)
	// The test's own producer must see the new partitions too.
	if leader, _, _ := c.manual.PartitionLeader(topic, 0); leader >= 0 {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if leader, _, _ := c.manual.PartitionLeader(topic, total-1); leader >= 0 {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("testcluster: the test producer did not see %d partitions of %s within 30s", total, topic)
			}
			c.manual.ForceMetadataRefresh()
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// AwaitPartitions waits up to 30s until metadata shows topic with n
// partitions, each with a leader.
func (c *Cluster) AwaitPartitions(tb testing.TB, topic string, n int32) {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	if err := c.awaitPartitions(ctx, topic, n); err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
}

// awaitPartitions polls metadata until it shows topic with n partitions,
// each with a leader, or ctx is done.
func (c *Cluster) awaitPartitions(ctx context.Context, topic string, n int32) error {
	for {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		md, err := c.adm.Metadata(mctx, topic)
		cancel()
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && int32(len(td.Partitions)) == n {
				ready := true
				for _, p := range td.Partitions {
					if p.Leader < 0 || p.Err != nil {
						ready = false
					}
				}
				if ready {
					return nil
				}
			}
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("topic %s did not show %d partitions: %w (last error: %v)", topic, n, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Produce writes records synchronously with a plain franz-go client
// (partitions as given in each record) and returns them with offsets set.
func (c *Cluster) Produce(tb testing.TB, rs ...*kgo.Record) []*kgo.Record {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	if err := c.ProduceContext(ctx, rs...); err != nil {
		tb.Fatalf("testcluster: produce: %v", err)
	}
	return rs
}

// ProduceContext is Produce for callers without a testing.TB.
func (c *Cluster) ProduceContext(ctx context.Context, rs ...*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	return c.manual.ProduceSync(ctx, rs...).FirstErr()
}

// CommitRaw commits offsets for group as a plain client would: no
// polykafka metadata. The group must have no active members.
func (c *Cluster) CommitRaw(tb testing.TB, group, topic string, offsets map[int32]int64) {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	var os kadm.Offsets
	for p, o := range offsets {
		os.AddOffset(topic, p, o, -1)
	}
	resp, err := c.adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		tb.Fatalf("testcluster: raw commit for %s: %v", group, err)
	}
}

// Committed returns group's commits in topic: offset and metadata by
// partition (partitions without a commit are absent).
func (c *Cluster) Committed(tb testing.TB, group, topic string) map[int32]kadm.OffsetResponse {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	resps, err := c.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// kfake's answer for a group it never saw; Kafka's is no offsets.
		return map[int32]kadm.OffsetResponse{}
	}
	if err != nil {
		tb.Fatalf("testcluster: fetch offsets of %s: %v", group, err)
	}
	out := make(map[int32]kadm.OffsetResponse)
	for p, r := range resps[topic] {
		if r.At >= 0 {
			out[p] = r
		}
	}
	return out
}

// CommittedStable is Committed read the way a read-committed consumer
// reads its start positions (KIP-447): the fetch asks for stable offsets,
// and while a transaction's offset commit is pending (the broker answers
// UNSTABLE_OFFSET_COMMIT until the transaction's markers are written,
// which a real broker does after it answers EndTxn) it asks again, up to
// the test's bound.
func (c *Cluster) CommittedStable(tb testing.TB, group, topic string) map[int32]kadm.OffsetResponse {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	for {
		resps, err := c.adm.FetchOffsets(kadm.RequireStable(ctx), group)
		if errors.Is(err, kerr.GroupIDNotFound) {
			return map[int32]kadm.OffsetResponse{}
		}
		if err == nil {
			err = resps.Error()
		}
		if errors.Is(err, kerr.UnstableOffsetCommit) {
			select {
			case <-ctx.Done():
				tb.Fatalf("testcluster: offsets of %s still unstable: %v", group, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			tb.Fatalf("testcluster: fetch stable offsets of %s: %v", group, err)
		}
		out := make(map[int32]kadm.OffsetResponse)
		for p, r := range resps[topic] {
			if r.At >= 0 {
				out[p] = r
			}
		}
		return out
	}
}

// EndOffsets returns the high watermark of every partition of topic.
func (c *Cluster) EndOffsets(tb testing.TB, topic string) map[int32]int64 {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	listed, err := c.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		tb.Fatalf("testcluster: end offsets of %s: %v", topic, err)
	}
	out := make(map[int32]int64)
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// HoldFirstGeneration makes the first generation of group contain members
// members, as a real broker's group.initial.rebalance.delay.ms (3s by
// default) does when members start together: on kfake, which has no such
// delay, the first SyncGroup of the group is held until members distinct
// members have sent JoinGroup (or 15s passed), so that the generation the
// first member would have formed alone is replaced by one with everyone.
// On an external cluster it does nothing: the broker's delay does the job
// as long as the members start within it.
func (c *Cluster) HoldFirstGeneration(group string, members int) {
	if c.fake == nil {
		return
	}
	var mu sync.Mutex
	joined := make(map[string]bool)
	released := make(chan struct{})
	var once sync.Once
	c.fake.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		jr := req.(*kmsg.JoinGroupRequest)
		if jr.Group == group && jr.MemberID != "" {
			mu.Lock()
			joined[jr.MemberID] = true
			if len(joined) >= members {
				once.Do(func() { close(released) })
			}
			mu.Unlock()
		}
		return nil, nil, false
	})
	var held atomic.Bool
	c.fake.ControlKey(int16(kmsg.SyncGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		sr := req.(*kmsg.SyncGroupRequest)
		if sr.Group == group && held.CompareAndSwap(false, true) {
			c.fake.SleepControl(func() {
				select {
				case <-released:
				case <-time.After(15 * time.Second):
				}
			})
		}
		return nil, nil, false
	})
}

// DeleteRecords deletes the records of topic's partition before offset
// (Kafka's DeleteRecords: the log start offset moves to offset), as
// retention would.
func (c *Cluster) DeleteRecords(tb testing.TB, topic string, partition int32, offset int64) {
	tb.Helper()
	ctx, cancel := ctxFor(tb)
	defer cancel()
	var os kadm.Offsets
	os.AddOffset(topic, partition, offset, -1)
	resp, err := c.adm.DeleteRecords(ctx, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		tb.Fatalf("testcluster: delete records of %s/%d before %d: %v", topic, partition, offset, err)
	}
}
