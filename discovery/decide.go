// Package discovery holds the two pieces of the start-offset guarantee that
// do not depend on a client: [Decide], the pure rule that says where each
// assigned partition starts, and [Watcher], which polls partition counts
// and reports growth so that the group rebalances in seconds, not minutes.
package discovery

import (
	"fmt"
	"slices"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/offsetstore"
)

// PolicyKind says how a policy resolves to an offset.
type PolicyKind int

// Policy kinds. The zero value, PolicyDefault, means "the default of the
// field it is in" (see consumer.Options).
const (
	PolicyDefault PolicyKind = iota
	// PolicyLatest starts at the end of the partition: only records
	// produced after the decision are read.
	PolicyLatest
	// PolicyEarliest starts at the log start offset.
	PolicyEarliest
	// PolicyTime starts at the first record whose timestamp is at or after
	// Policy.Time, or at the end if there is none.
	PolicyTime
	// PolicyNone refuses to choose: the assignment fails with an error.
	PolicyNone
)

// Policy is a rule for choosing a start offset when there is no usable
// stored position.
type Policy struct {
	Kind PolicyKind
	// Time is the timestamp of a PolicyTime policy.
	Time time.Time
}

// Ready-made policies.
var (
	Latest   = Policy{Kind: PolicyLatest}
	Earliest = Policy{Kind: PolicyEarliest}
	None     = Policy{Kind: PolicyNone}
)

// At returns a policy that starts at the first record at or after t.
func At(t time.Time) Policy { return Policy{Kind: PolicyTime, Time: t} }

// Or returns p, or def if p is the zero Policy.
func (p Policy) Or(def Policy) Policy {
	if p.Kind == PolicyDefault {
		return def
	}
	return p
}

// String returns "latest", "earliest", "none" or "time(<RFC 3339>)".
func (p Policy) String() string {
	switch p.Kind {
	case PolicyDefault:
		return "default"
	case PolicyLatest:
		return "latest"
	case PolicyEarliest:
		return "earliest"
	case PolicyNone:
		return "none"
	case PolicyTime:
		return "time(" + p.Time.UTC().Format(time.RFC3339Nano) + ")"
	}
	return fmt.Sprintf("PolicyKind(%d)", p.Kind)
}

// Validate returns an error naming field if p is not a valid policy.
func (p Policy) Validate(field string) error {
	switch p.Kind {
	case PolicyDefault, PolicyLatest, PolicyEarliest, PolicyNone:
		return nil
	case PolicyTime:
		if p.Time.IsZero() {
			return fmt.Errorf("%s: time policy with a zero time", field)
		}
		return nil
	}
	return fmt.Errorf("%s: unknown policy kind %d", field, p.Kind)
}

// Reason says which row of the decision table chose a start offset.
type Reason string

// The rows of the decision table.
const (
	// ReasonCommitted: the store had a position inside the log.
	ReasonCommitted Reason = "committed"
	// ReasonInitial: the group had never read the topic (or the partition
	// belongs to the topic as the group first saw it and nobody has
	// committed it yet); the initial policy applied.
	ReasonInitial Reason = "initial"
	// ReasonNewPartition: the partition was created after the group
	// started reading the topic; the new-partition policy applied.
	ReasonNewPartition Reason = "new-partition"
	// ReasonOutOfRange: the stored position was outside the log (deleted by
	// retention); the out-of-range policy applied.
	ReasonOutOfRange Reason = "out-of-range"
)

// Input is everything Decide needs for one topic.
type Input struct {
	// Topic is the topic being decided.
	Topic string
	// Partitions are the assigned partitions to decide.
	Partitions []int32
	// Count is the topic's partition count, read from fresh metadata.
	Count int32
	// Known is the smallest partition count the deciding member has seen
	// for the topic (when it started), or 0. If the group has no position
	// in the topic, the baseline recorded is min(Count, Known): a partition
	// created after the member started, and assigned after this decision
	// (the leader may plan from older metadata), then counts as new rather
	// than taking "latest" late.
	Known int32
	// Positions are the group's stored positions for every partition of
	// the topic (not only the assigned ones).
	Positions map[int32]offsetstore.Position
	// Start and End are the log start offset and high watermark of each
	// assigned partition.
	Start, End map[int32]int64
	// Times maps a Unix millisecond timestamp to the offset of each
	// assigned partition for it (-1 if no record is at or after it). It is
	// needed only for PolicyTime policies; see [TimesNeeded].
	Times map[int64]map[int32]int64
	// Initial, NewPartitions and OutOfRange are the policies of the
	// decision table. Their zero values are latest, earliest and earliest.
	Initial, NewPartitions, OutOfRange Policy
}

// Decision is where one partition starts, and why.
type Decision struct {
	polykafka.TopicPartition
	// Offset is the start offset.
	Offset int64
	// Reason is the row of the decision table that chose Offset.
	Reason Reason
	// Policy is the policy applied; the zero Policy for ReasonCommitted.
	Policy Policy
	// Stored is the stored position, or -1 if there was none.
	Stored int64
	// Baseline is the topic's baseline to store with the position.
	Baseline int32
}

// NeedsCommit reports whether the decision must be written to the store
// before records are handed out: every decision except resuming a stored
// position that is still valid.
func (d Decision) NeedsCommit() bool { return d.Reason != ReasonCommitted }

// TimesNeeded returns the Unix millisecond timestamps that Input.Times must
// hold for the given policies.
func TimesNeeded(policies ...Policy) []int64 {
	var out []int64
	for _, p := range policies {
		if p.Kind == PolicyTime {
			ms := p.Time.UnixMilli()
			if !slices.Contains(out, ms) {
				out = append(out, ms)
			}
		}
	}
	return out
}

// Baseline returns the baseline the positions of a topic imply: the
// smallest baseline recorded with any of them (the safest: more partitions
// count as new), or, if none records one, 0.
func Baseline(positions map[int32]offsetstore.Position) int32 {
	var b int32
	for _, p := range positions {
		if p.Baseline > 0 && (b == 0 || p.Baseline < b) {
			b = p.Baseline
		}
	}
	return b
}

// Decide applies the decision table of the start-offset guarantee to every
// partition in in.Partitions:
//
//	stored position inside [start, end]            -> that position      (committed)
//	stored position outside it                     -> OutOfRange policy  (out-of-range)
//	no position for the partition, and
//	  no position for any partition of the topic   -> Initial policy     (initial)
//	  positions with baseline N0, partition < N0   -> Initial policy     (initial)
//	  positions with baseline N0, partition >= N0  -> NewPartitions      (new-partition)
//	  positions without baseline (another client)  -> NewPartitions      (new-partition)
//
// A partition's id is compared with the baseline because Kafka partition
// ids are dense and growth only appends: with several members deciding in
// the first generation, "another partition has a commit" does not mean the
// group read the topic before, but "partition id >= the count when the group
// first read the topic" does mean the partition is new.
//
// Decisions come back in the order of in.Partitions. Decide fails if a
// policy is None where it must apply, or if an offset it needs is missing
// from in.
func Decide(in Input) ([]Decision, error) {
	initial := in.Initial.Or(Latest)
	newp := in.NewPartitions.Or(Earliest)
	oor := in.OutOfRange.Or(Earliest)

	recorded := Baseline(in.Positions)
	knownTopic := len(in.Positions) > 0
	baseline := recorded
	if baseline == 0 {
		// Never read by polykafka: record the count as the group sees it
		// now (or as this member first saw it, if smaller). For a topic
		// read by another client before, every partition without a
		// position is new anyway (see below).
		baseline = in.Count
		if in.Known > 0 && in.Known < baseline {
			baseline = in.Known
		}
	}

	out := make([]Decision, 0, len(in.Partitions))
	for _, p := range in.Partitions {
		d := Decision{
			TopicPartition: polykafka.TopicPartition{Topic: in.Topic, Partition: p},
			Stored:         -1,
			Baseline:       baseline,
		}
		start, okS := in.Start[p]
		end, okE := in.End[p]
		if !okS || !okE {
			return nil, polykafka.NewError(polykafka.Unknown, "discovery: Decide",
				"no log offsets for "+d.TopicPartition.String(), nil)
		}
		pos, stored := in.Positions[p]
		if stored && pos.Offset < 0 {
			stored = false
		}
		var pol Policy
		switch {
		case stored:
			d.Stored = pos.Offset
			if pos.Offset >= start && pos.Offset <= end {
				d.Offset, d.Reason = pos.Offset, ReasonCommitted
				out = append(out, d)
				continue
			}
			d.Reason, pol = ReasonOutOfRange, oor
		case !knownTopic:
			d.Reason, pol = ReasonInitial, initial
		case recorded > 0 && p < recorded:
			d.Reason, pol = ReasonInitial, initial
		default:
			d.Reason, pol = ReasonNewPartition, newp
		}
		d.Policy = pol
		off, err := resolve(in, pol, p, start, end)
		if err != nil {
			code := polykafka.NotFound
			if d.Reason == ReasonOutOfRange {
				code = polykafka.OffsetOutOfRange
			}
			return nil, polykafka.NewError(code, "discovery: Decide",
				fmt.Sprintf("%s: %s (%s policy is %s)", d.TopicPartition, d.Reason, d.Reason, pol), err)
		}
		d.Offset = off
		out = append(out, d)
	}
	return out, nil
}

func resolve(in Input, pol Policy, p int32, start, end int64) (int64, error) {
	switch pol.Kind {
	case PolicyLatest:
		return end, nil
	case PolicyEarliest:
		return start, nil
	case PolicyTime:
		offs, ok := in.Times[pol.Time.UnixMilli()]
		if !ok {
			return 0, fmt.Errorf("no offsets resolved for time %s", pol.Time.UTC().Format(time.RFC3339Nano))
		}
		off, ok := offs[p]
		if !ok {
			return 0, fmt.Errorf("no offset resolved for time %s", pol.Time.UTC().Format(time.RFC3339Nano))
		}
		if off < 0 || off > end {
			return end, nil
		}
		if off < start {
			return start, nil
		}
		return off, nil
	case PolicyNone:
		return 0, fmt.Errorf("no usable position and the policy is none")
	}
	return 0, fmt.Errorf("unknown policy kind %d", pol.Kind)
}
