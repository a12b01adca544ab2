package offsetstore

import (
	"context"
	"strconv"
	"strings"

	"github.com/polykafka/polykafka"
)

// GroupCommitter is what the Kafka store needs from a client: the commits
// of the group the client is a member of. Every polykafka consumer driver
// implements it (see adapters/driver.Consumer).
type GroupCommitter interface {
	// Commit commits offsets in the member's current generation.
	Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error
	// Committed returns the group's commits for every partition of topics
	// that has one.
	Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error)
}

// Kafka is the default Store: positions are the group's committed offsets,
// and the baseline travels in each commit's metadata string
// ("polykafka:v1:baseline=N"), a field every Kafka client can write, so
// the store works whichever adapter commits.
//
// Commits go through the group member and carry its generation: the
// broker refuses them from a member that left the group or whose
// generation is over. (It does not check which member owns a partition;
// the consumer stops committing a partition once it is revoked or lost.) Kafka deletes the commits of a group that
// stays empty longer than the broker's offsets.retention.minutes (7 days by
// default); the group then counts as new and its initial policy applies.
type Kafka struct {
	group string
	c     GroupCommitter
}

// NewKafka returns a store that keeps the positions of group in its
// committed offsets through c, a member of group.
func NewKafka(group string, c GroupCommitter) *Kafka { return &Kafka{group: group, c: c} }

const metaPrefix = "polykafka:v1:baseline="

// EncodeMetadata returns the commit metadata string that records baseline.
// It is exported for adapters and tools that write commits by other means.
func EncodeMetadata(baseline int32) string {
	if baseline <= 0 {
		return ""
	}
	return metaPrefix + strconv.Itoa(int(baseline))
}

// DecodeMetadata returns the baseline recorded in a commit metadata string,
// or 0 if the string was not written by polykafka. It accepts exactly
// "polykafka:v1:baseline=" followed by decimal digits (no sign, no spaces,
// nothing after), so that other strings with the same prefix, such as the
// JoinGroup user data of older polykafka adapters
// ("polykafka:v1:topic=count;..."), never pass for a baseline.
func DecodeMetadata(meta string) int32 {
	rest, ok := strings.CutPrefix(meta, metaPrefix)
	if !ok || rest == "" {
		return 0
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return 0
		}
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

func (s *Kafka) checkGroup(op, group string) error {
	if group != s.group {
		return polykafka.NewError(polykafka.InvalidArgument, op,
			"group "+strconv.Quote(group)+" is not this store's group "+strconv.Quote(s.group), nil)
	}
	return nil
}

// Load implements Store.
func (s *Kafka) Load(ctx context.Context, group, topic string) (map[int32]Position, error) {
	const op = "offsetstore: Kafka.Load"
	if err := s.checkGroup(op, group); err != nil {
		return nil, err
	}
	cs, err := s.c.Committed(ctx, []string{topic})
	if err != nil {
		return nil, err
	}
	out := make(map[int32]Position, len(cs))
	for tp, c := range cs {
		if tp.Topic != topic || c.Offset < 0 {
			continue
		}
		out[tp.Partition] = Position{Offset: c.Offset, Baseline: DecodeMetadata(c.Metadata)}
	}
	return out, nil
}

// Save implements Store. It is one OffsetCommit request: the broker may
// accept some partitions and refuse others, and then Save returns an error.
func (s *Kafka) Save(ctx context.Context, group string, positions map[polykafka.TopicPartition]Position) error {
	const op = "offsetstore: Kafka.Save"
	if err := s.checkGroup(op, group); err != nil {
		return err
	}
	if err := validate(op, group, positions); err != nil {
		return err
	}
	if len(positions) == 0 {
		return nil
	}
	offs := make(map[polykafka.TopicPartition]polykafka.CommittedOffset, len(positions))
	for tp, p := range positions {
		offs[tp] = polykafka.CommittedOffset{Offset: p.Offset, Metadata: EncodeMetadata(p.Baseline)}
	}
	return s.c.Commit(ctx, offs)
}
