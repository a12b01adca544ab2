package polysarama

import (
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/polykafka/polykafka/adapters/driver"
)

// strategy is sarama's eager range strategy (protocol name "range") with
// two additions that make partition growth reliable from any member (see
// the package doc):
//
//   - SubscriptionUserData, which sarama calls before every JoinGroup
//     (consumer_group.go subscriptionMetadata), carries the member's
//     partition counts, so a rejoin after growth changes the member's
//     metadata and the coordinator rebalances (an unchanged rejoin gets the
//     current generation back).
//   - Plan, which sarama calls only on the leader, right after one metadata
//     refresh (consumer_group.go balance): if that metadata still shows
//     fewer partitions than some member reported, it refreshes again until
//     it does, for at most driver.LeaderMetadataWait.
type strategy struct {
	sarama.BalanceStrategy
	log *slog.Logger

	mu     sync.Mutex
	client sarama.Client // set once the client exists
	counts map[string]int32
}

func newStrategy(log *slog.Logger) *strategy {
	return &strategy{BalanceStrategy: sarama.NewBalanceStrategyRange(), log: log}
}

func (s *strategy) setClient(cl sarama.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client = cl
}

func (s *strategy) setCounts(counts map[string]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = make(map[string]int32)
	}
	for t, n := range counts {
		if n > s.counts[t] {
			s.counts[t] = n
		}
	}
}

func (s *strategy) snapshot() (map[string]int32, sarama.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts), s.client
}

// SubscriptionUserData implements sarama.SubscriptionUserDataBalanceStrategy.
func (s *strategy) SubscriptionUserData([]string) ([]byte, error) {
	counts, _ := s.snapshot()
	return driver.EncodeUserData(counts), nil
}

// Plan implements sarama.BalanceStrategy.
func (s *strategy) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	want, cl := s.snapshot()
	if want == nil {
		want = make(map[string]int32)
	}
	for _, m := range members {
		for t, n := range driver.DecodeUserData(m.UserData) {
			want[t] = max(want[t], n)
		}
	}
	if cl != nil {
		s.awaitMetadata(cl, want, topics)
	}
	return s.BalanceStrategy.Plan(members, topics)
}

// awaitMetadata refreshes cl's metadata until every subscribed topic t
// shows want[t] partitions, and updates topics with what it saw; it waits
// sarama's Metadata.Retry backoff between refreshes.
func (s *strategy) awaitMetadata(cl sarama.Client, want map[string]int32, topics map[string][]int32) {
	var short []string
	missing := func() []string {
		short = short[:0]
		for t, n := range want {
			if ps, ok := topics[t]; ok && int32(len(ps)) < n {
				short = append(short, t)
			}
		}
		return short
	}
	refresh := func() {
		ts := missing()
		if err := cl.RefreshMetadata(ts...); err != nil {
			return
		}
		for _, t := range ts {
			if ps, err := cl.Partitions(t); err == nil && len(ps) > len(topics[t]) {
				topics[t] = ps
			}
		}
	}
	fresh := func() bool { return len(missing()) == 0 }
	if !driver.AwaitLeaderMetadata(fresh, refresh, metadataBackoff(cl.Config())) {
		s.log.Warn("sarama: leader metadata still misses partitions members reported; planning anyway", "want", want)
	}
}

// metadataBackoff is sarama's own wait before the n-th metadata retry:
// Metadata.Retry.BackoffFunc if set, Metadata.Retry.Backoff otherwise.
func metadataBackoff(cfg *sarama.Config) func(n int) time.Duration {
	r := cfg.Metadata.Retry
	return func(n int) time.Duration {
		if r.BackoffFunc != nil {
			return r.BackoffFunc(n, r.Max)
		}
		return r.Backoff
	}
}
