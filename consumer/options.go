package consumer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// CommitMode says when processed offsets are committed.
type CommitMode int

const (
	// CommitPeriodic (the default) commits processed offsets every
	// CommitInterval, and on revoke and Close.
	CommitPeriodic CommitMode = iota
	// CommitManual commits processed offsets only when Commit is called,
	// and on revoke and Close.
	CommitManual
	// CommitTransactional never commits processed offsets itself (not on
	// revoke, not on Close; Commit fails): a transactional producer
	// commits them with its transaction (producer.SendOffsets), so that
	// they are committed exactly when the records produced from them are.
	// Start decisions are still committed at assignment.
	CommitTransactional
)

// ErrorPolicy says what Run does when the handler returns an error or
// panics for a record. Whatever the policy, nothing at or after the failed
// record is committed for that partition until it is handled.
type ErrorPolicy struct {
	// Retry retries the failed record with exponential backoff instead of
	// stopping. False (the default) stops the consumer: Run commits what
	// was processed before the failed record and returns the error; every
	// later Run or Poll returns it too, and the application should Close
	// the consumer. A new consumer of the group resumes at the failed
	// record.
	Retry bool
	// MaxAttempts bounds the attempts of one record when Retry is set;
	// after the last failure the consumer stops as without Retry. Zero
	// means retry until the handler succeeds, the partition is revoked or
	// the context is done.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled after each
	// failure up to MaxBackoff, each wait jittered by ±20% (never above
	// MaxBackoff). Zero means 100ms; zero MaxBackoff means 10s.
	Backoff, MaxBackoff time.Duration
	// DeadLetter, when set, sends a record whose handling failed for good
	// (at the first failure without Retry, after MaxAttempts with it) to
	// a dead-letter topic instead of stopping the consumer; see
	// [DeadLetter]. Nil (the default) stops the consumer.
	DeadLetter *DeadLetter
}

// Options configure a Consumer. A nil *Options means all defaults; every
// field's zero value is a documented default.
type Options struct {
	// Initial is where partitions start when the group has never read
	// their topic. Zero means discovery.Latest.
	Initial discovery.Policy
	// NewPartitions is where partitions created after the group started
	// reading their topic start. Zero means discovery.Earliest, which is
	// what makes growth lossless.
	NewPartitions discovery.Policy
	// OutOfRange is where a partition starts when its stored position is
	// no longer in the log. Zero means discovery.Earliest.
	OutOfRange discovery.Policy

	// Store keeps the group's positions. Nil means the group's committed
	// offsets in Kafka (offsetstore.Kafka), which needs no infrastructure.
	Store offsetstore.Store

	// DiscoveryInterval is how often partition counts are polled so that
	// new partitions are assigned quickly. Zero means
	// discovery.DefaultInterval (5s); a negative value disables polling
	// (new partitions are then found at the backend's own metadata
	// refresh, and still start at earliest).
	DiscoveryInterval time.Duration

	// Commit is the commit mode. Zero means CommitPeriodic.
	Commit CommitMode
	// CommitInterval is the period of CommitPeriodic. Zero means 5s.
	CommitInterval time.Duration

	// OnError is the handler error policy of Run. Zero means stop.
	OnError ErrorPolicy

	// MaxPollRecords bounds the records one fetch returns (and so the
	// batches of RunBatch and Poll). Zero means 1000.
	MaxPollRecords int

	// Concurrency is the number of handler calls of Run and RunBatch in
	// flight at once on this member, ordered as Ordering says. Zero or 1
	// (the default) calls the handler one record (or batch) at a time,
	// in partition order. See "Concurrency" in the package doc: commits
	// move only over a partition's contiguous processed prefix, whatever
	// the order in which handlers finish. With Concurrency above 1, Poll
	// tracks the records it hands out and Mark may be called in any
	// order, under the same commit rule.
	Concurrency int
	// Ordering is what Concurrency above 1 keeps in order. Zero means
	// ByPartition.
	Ordering Ordering
	// MaxBufferedRecords bounds the records the member holds with
	// Concurrency above 1: fetched and not yet processed, queued for a
	// handler or in one (for Poll: handed out and not yet marked). At the
	// bound the consumer stops fetching until half of them are processed,
	// and pauses the assigned partitions (Pause) when that takes more than
	// 20 ms (Poll: at once), resuming them after: memory stays flat under
	// a slow handler on a large backlog. The clients' own prefetch buffers
	// come on top.
	// Zero means 4 × max(MaxPollRecords, Concurrency) (4000 with the
	// defaults).
	MaxBufferedRecords int

	// Partitions are the partitions a reader (NewReader) reads. Nil means
	// every partition of its topics, partitions added later included. A
	// group member (New) is assigned its partitions by the group: New
	// rejects a non-nil Partitions.
	Partitions []polykafka.TopicPartition

	// ReadCommitted makes the consumer read only records of committed
	// transactions (and records written outside transactions), as Kafka's
	// isolation.level=read_committed does. False (the default) reads
	// everything, the clients' default.
	ReadCommitted bool

	// GroupProtocol is the group membership protocol. Zero means
	// GroupProtocolClassic, the protocol of every Kafka version and
	// backend. GroupProtocolConsumer is KIP-848's (Kafka 4.0+; see
	// [GroupProtocolConsumer]); a backend without it fails New with code
	// Unimplemented. A reader (NewReader) has no group and rejects it.
	GroupProtocol GroupProtocol

	// CloseTimeout bounds New when its context has no deadline, and the
	// wait for the handler in Close. Zero means 30s.
	CloseTimeout time.Duration

	// Logger receives the consumer's logs: start decisions and discovered
	// partitions at info level, failed commits at warn level. Nil discards.
	Logger *slog.Logger

	// Hooks are values implementing one or more of the Hook interfaces of
	// this package (HookStartDecision, HookAssigned, ...). Values that
	// implement none are rejected by New.
	Hooks []any
}

// GroupProtocol is a consumer group membership protocol (Kafka's
// group.protocol).
type GroupProtocol int

const (
	// GroupProtocolClassic is the classic protocol (JoinGroup / SyncGroup):
	// a member elected leader plans the assignment with the eager "range"
	// strategy that every backend implements, so members on different
	// backends share a group. Partition discovery makes the group
	// rebalance when a topic grows.
	GroupProtocolClassic GroupProtocol = iota
	// GroupProtocolConsumer is KIP-848's consumer protocol, generally
	// available since Kafka 4.0: the broker's group coordinator assigns
	// partitions incrementally (range assignor), with no client-side
	// leader and no stop-the-world rebalance. The start-offset guarantee
	// is the same: every partition the coordinator assigns, incremental
	// assignments included, is decided and its decision stored before its
	// first record. The coordinator notices new partitions by itself, so
	// partition discovery only reports growth (log and
	// HookPartitionsDiscovered) and never forces a rebalance; new
	// partitions arrive with the member's next heartbeat (the broker's
	// group.consumer.heartbeat.interval.ms, 5s by default).
	//
	// Rebalance hooks receive incremental changes: HookAssigned only the
	// partitions added to this member (its other partitions keep being
	// read), HookRevoked and HookLost only the partitions taken from it.
	// The broker must enable the protocol (Kafka 4.0+ does by default;
	// group.coordinator.rebalance.protocols includes "consumer").
	GroupProtocolConsumer
)

// String returns "classic" or "consumer", Kafka's group.protocol values.
func (p GroupProtocol) String() string { return driver.GroupProtocol(p).String() }

// settings are Options with defaults applied.
type settings struct {
	Options
}

func (o *Options) settings() (settings, error) {
	var s settings
	if o != nil {
		s.Options = *o
	}
	if err := s.Initial.Validate("Options.Initial"); err != nil {
		return s, err
	}
	if err := s.NewPartitions.Validate("Options.NewPartitions"); err != nil {
		return s, err
	}
	if err := s.OutOfRange.Validate("Options.OutOfRange"); err != nil {
		return s, err
	}
	s.Initial = s.Initial.Or(discovery.Latest)
	s.NewPartitions = s.NewPartitions.Or(discovery.Earliest)
	s.OutOfRange = s.OutOfRange.Or(discovery.Earliest)
	switch {
	case s.Commit < CommitPeriodic || s.Commit > CommitTransactional:
		return s, fmt.Errorf("Options.Commit: unknown commit mode %d", s.Commit)
	case s.CommitInterval < 0:
		return s, fmt.Errorf("Options.CommitInterval: %v is negative", s.CommitInterval)
	case s.MaxPollRecords < 0:
		return s, fmt.Errorf("Options.MaxPollRecords: %d is negative", s.MaxPollRecords)
	case s.GroupProtocol != GroupProtocolClassic && s.GroupProtocol != GroupProtocolConsumer:
		return s, fmt.Errorf("Options.GroupProtocol: unknown group protocol %d", s.GroupProtocol)
	case s.CloseTimeout < 0:
		return s, fmt.Errorf("Options.CloseTimeout: %v is negative", s.CloseTimeout)
	case s.Concurrency < 0:
		return s, fmt.Errorf("Options.Concurrency: %d is negative", s.Concurrency)
	case s.Ordering < ByPartition || s.Ordering > Unordered:
		return s, fmt.Errorf("Options.Ordering: unknown ordering %d", s.Ordering)
	case s.MaxBufferedRecords < 0:
		return s, fmt.Errorf("Options.MaxBufferedRecords: %d is negative", s.MaxBufferedRecords)
	case s.OnError.DeadLetter != nil && s.OnError.DeadLetter.Producer == nil:
		return s, fmt.Errorf("Options.OnError.DeadLetter.Producer is nil")
	case s.OnError.MaxAttempts < 0:
		return s, fmt.Errorf("Options.OnError.MaxAttempts: %d is negative", s.OnError.MaxAttempts)
	case s.OnError.Backoff < 0:
		return s, fmt.Errorf("Options.OnError.Backoff: %v is negative", s.OnError.Backoff)
	case s.OnError.MaxBackoff < 0:
		return s, fmt.Errorf("Options.OnError.MaxBackoff: %v is negative", s.OnError.MaxBackoff)
	case s.OnError.MaxBackoff > 0 && s.OnError.MaxBackoff < s.OnError.Backoff:
		return s, fmt.Errorf("Options.OnError.MaxBackoff: %v is less than Backoff (%v)", s.OnError.MaxBackoff, s.OnError.Backoff)
	case s.OnError.MaxBackoff == 0 && s.OnError.Backoff > 10*time.Second:
		return s, fmt.Errorf("Options.OnError.Backoff: %v is more than the default MaxBackoff (10s); set MaxBackoff too", s.OnError.Backoff)
	}
	for i, h := range s.Hooks {
		if !isHook(h) {
			return s, fmt.Errorf("Options.Hooks[%d]: %T implements no consumer hook interface", i, h)
		}
	}
	if s.DiscoveryInterval == 0 {
		s.DiscoveryInterval = discovery.DefaultInterval
	}
	if s.CommitInterval == 0 {
		s.CommitInterval = 5 * time.Second
	}
	if s.MaxPollRecords == 0 {
		s.MaxPollRecords = 1000
	}
	if s.CloseTimeout == 0 {
		s.CloseTimeout = 30 * time.Second
	}
	if s.Concurrency == 0 {
		s.Concurrency = 1
	}
	if s.MaxBufferedRecords == 0 {
		s.MaxBufferedRecords = 4 * max(s.MaxPollRecords, s.Concurrency)
	}
	if s.OnError.Backoff == 0 {
		s.OnError.Backoff = 100 * time.Millisecond
	}
	if s.OnError.MaxBackoff == 0 {
		s.OnError.MaxBackoff = 10 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}
