package franz

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka/adapters/driver"
)

// balancer is kgo's eager range balancer with two additions that make
// partition growth reliable from any member (see the package doc):
//
//   - JoinGroupMetadata carries the member's partition counts as user data,
//     so a rejoin after growth changes the member's metadata and the
//     coordinator rebalances (an unchanged rejoin returns the current
//     generation; see kafka-go#646 for the same effect there).
//   - MemberBalancer, which kgo calls only on the leader before it reads its
//     metadata cache to plan, refreshes that cache until it shows every
//     partition any member reported. kgo's balanceGroup plans from the cache
//     (up to MetadataMaxAge, 5 min, old), so without this a leader that did
//     not notice the growth itself assigns nothing new.
type balancer struct {
	kgo.GroupBalancer
	log    *slog.Logger
	cl     atomic.Pointer[kgo.Client]
	mu     sync.Mutex
	counts map[string]int32
	leader atomic.Bool // this member planned the last generation
}

func newBalancer(log *slog.Logger) *balancer {
	return &balancer{GroupBalancer: kgo.RangeBalancer(), log: log}
}

// setCounts replaces the counts the member reports with the latest view
// (not the largest ever seen: a topic deleted and recreated smaller must
// not keep the leader waiting for partitions that no longer exist).
func (b *balancer) setCounts(counts map[string]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counts = maps.Clone(counts)
}

func (b *balancer) snapshot() map[string]int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.counts)
}

// JoinGroupMetadata implements kgo.GroupBalancer.
func (b *balancer) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	b.leader.Store(false) // until MemberBalancer says otherwise for this join
	md := b.GroupBalancer.JoinGroupMetadata(topics, current, generation)
	counts := b.snapshot()
	if len(counts) == 0 {
		return md
	}
	var m kmsg.ConsumerMemberMetadata
	if err := m.ReadFrom(md); err != nil {
		b.log.Warn("polykafka: franz: cannot add partition counts to join metadata", "err", err)
		return md
	}
	m.UserData = driver.EncodeUserData(counts)
	return m.AppendTo(nil)
}

// MemberBalancer implements kgo.GroupBalancer.
func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b.leader.Store(true)
	want := b.snapshot()
	if want == nil {
		want = make(map[string]int32)
	}
	for _, m := range members {
		var md kmsg.ConsumerMemberMetadata
		if md.ReadFrom(m.ProtocolMetadata) != nil {
			continue
		}
		for t, n := range driver.DecodeUserData(md.UserData) {
			want[t] = max(want[t], n)
		}
	}
	b.awaitMetadata(want)
	return b.GroupBalancer.MemberBalancer(members)
}

// awaitMetadata refreshes the client's metadata until it has want[t]
// partitions of every topic t, for at most driver.LeaderMetadataWait (the
// rebalance timeout is 60s by default). kgo has no notification of a
// metadata update, so it checks after each forced refresh, waiting the
// client's own RetryBackoffFn between checks.
func (b *balancer) awaitMetadata(want map[string]int32) {
	cl := b.cl.Load()
	if cl == nil || len(want) == 0 {
		return
	}
	fresh := func() bool {
		for t, n := range want {
			if n <= 0 {
				continue
			}
			if leader, _, _ := cl.PartitionLeader(t, n-1); leader < 0 {
				return false
			}
		}
		return true
	}
	retryBackoff, _ := cl.OptValue(kgo.RetryBackoffFn).(func(int) time.Duration)
	if retryBackoff == nil {
		retryBackoff = func(int) time.Duration { return 100 * time.Millisecond }
	}
	if !driver.AwaitLeaderMetadata(fresh, cl.ForceMetadataRefresh, retryBackoff) {
		b.log.Warn("polykafka: franz: leader metadata still misses partitions members reported; planning anyway", "want", want)
	}
}
