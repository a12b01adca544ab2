package kafkago

import (
	"cmp"
	"slices"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka/adapters/driver"
)

// balancer is kafka-go's RangeGroupBalancer with polykafka's user data: the
// partition counts the member last saw (driver.EncodeUserData), which
// kafka-go asks for on every join (consumergroup.go makeJoinGroupRequest),
// so that a rejoin after growth changes the member's join metadata and the
// coordinator rebalances (kafka-go#646). As leader it plans with at least
// the partitions every member reported.
type balancer struct {
	mu       sync.Mutex
	counts   map[string]int32
	lastSent []byte // the user data of the last join
}

var _ kafka.GroupBalancer = (*balancer)(nil)

// ProtocolName implements kafka.GroupBalancer: "range", the protocol all
// polykafka backends share.
func (*balancer) ProtocolName() string { return "range" }

// UserData implements kafka.GroupBalancer.
func (b *balancer) UserData() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastSent = driver.EncodeUserData(b.counts)
	return b.lastSent, nil
}

// setCounts records counts (keeping the larger count per topic) and reports
// whether the user data changed since the last join.
func (b *balancer) setCounts(counts map[string]int32) (changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.counts == nil {
		b.counts = make(map[string]int32, len(counts))
	}
	for t, n := range counts {
		if n > b.counts[t] {
			b.counts[t] = n
		}
	}
	return string(driver.EncodeUserData(b.counts)) != string(b.lastSent)
}

// stale reports whether the counts changed after the last join.
func (b *balancer) stale() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(driver.EncodeUserData(b.counts)) != string(b.lastSent)
}

// AssignGroups implements kafka.GroupBalancer. kafka-go reads partitions
// for the topics of every member before calling it (assignTopicPartitions),
// not only for the topics this member subscribes to (kafka-go#1351);
// partitions that a member reported in its user data but that the
// metadata does not show yet are added (partition ids are dense and only
// grow), so the plan covers at least what any member saw.
func (b *balancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	return kafka.RangeGroupBalancer{}.AssignGroups(members, withReported(members, partitions))
}

// withReported returns partitions extended with the partitions members
// reported in their user data, sorted by topic and id.
func withReported(members []kafka.GroupMember, partitions []kafka.Partition) []kafka.Partition {
	type key struct {
		topic string
		id    int
	}
	seen := make(map[key]bool)
	out := make([]kafka.Partition, 0, len(partitions))
	for _, p := range partitions {
		k := key{p.Topic, p.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, kafka.Partition{Topic: p.Topic, ID: p.ID})
	}
	for _, m := range members {
		for t, n := range driver.DecodeUserData(m.UserData) {
			if !slices.Contains(m.Topics, t) {
				continue
			}
			for id := int32(0); id < n; id++ {
				k := key{t, int(id)}
				if !seen[k] {
					seen[k] = true
					out = append(out, kafka.Partition{Topic: t, ID: int(id)})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b kafka.Partition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.ID, b.ID))
	})
	return out
}
