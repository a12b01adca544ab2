// Package driver defines the contract that adapters implement so that the
// portable packages consumer, producer and admin can run on a Kafka client
// library. Application code should use those packages; only adapter authors
// need this package.
//
// # Adapters translate, the portable layer decides
//
// Policies live in the portable layer: where a partition starts (at
// assignment and after an out-of-range fetch), when to commit, whether an
// error ends the consumer, when and how often to retry, how to react to new
// partitions, key partitioning ([KeyPartition]), validation, and how long
// Close and Flush may take. An adapter translates calls to its client and
// never decides. In particular it never applies its client's own
// auto.offset.reset, never retries beyond what its client does by itself,
// and returns every error it sees for the portable layer to classify with
// its ErrorCode.
//
// # Constructors
//
// Every adapter's constructor takes a [polykafka.Connection] (brokers,
// client id, TLS, SASL) first and its client's native configuration after
// it, native settings winning where they overlap, so that switching the
// backend is one line. Adapters document in a "# Configuration" section
// what they set and what cannot be overridden.
//
// # How each client implements the contract
//
// Checked against the sources of franz-go v1.22.2, IBM/sarama v1.61.1,
// segmentio/kafka-go v0.4.51 and confluent-kafka-go/v2 v2.11.1 (file:line
// references are to those versions):
//
//	method            franz-go (kgo)                          IBM/sarama                                   segmentio/kafka-go                            confluent-kafka-go (librdkafka)
//	Assigned (call)   OnPartitionsAssigned, then              ConsumerGroupHandler.Setup; the claims are   ConsumerGroup.Next -> Generation; call        rebalance callback on AssignedPartitions
//	                  AdjustFetchOffsetsFn sets the offsets;  paused and never read: the adapter's own     before gen.Start; one fetch loop per          (inside Poll): Assign with explicit offsets;
//	                  partitions without an offset are        sarama.Consumer partition consumers start    partition, started at the offset              on an error still Assign, paused
//	                  dropped from the fetch                  at the offset (a claim cannot restart)
//	Revoked / Lost    OnPartitionsRevoked / OnPartitionsLost  Cleanup; lost told from why the session      end of gen.Start; lost told from heartbeat  RevokedPartitions; lost = AssignmentLost()
//	                                                          ended (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,  error codes read on the group connections   (consumer.go:238)
//	                                                          FENCED_INSTANCE_ID, heartbeat failure)
//	Fetch             PollRecords; EachError -> errors        the partition consumers' Messages/Errors     per-partition Client.Fetch loops, fanned in  Poll in short slices (it takes no ctx)
//	Commit            CommitOffsetsSync + PreCommitFnContext  OffsetCommitRequest to Coordinator(group):   Client.OffsetCommit with GenerationID,        CommitOffsets with TopicPartition.Metadata
//	                  (sets the metadata string)              Broker.CommitOffset, AddBlock(..., metadata)  MemberID, Metadata (offsetcommit.go:13-47)    (kafka.go:282)
//	                                                          (broker.go:615, offset_commit_request.go:307)
//	Committed         kadm FetchOffsets                       Broker.FetchOffset (broker.go:627)           Client.OffsetFetch                            Committed
//	ListOffsets       kadm ListStart/End/AfterMilli offsets   one OffsetRequest per leader                 Client.ListOffsets (listoffset.go:14-35)      NewAdminClientFromConsumer + ListOffsets
//	                                                          (Broker.GetAvailableOffsets, broker.go:498)                                                (adminapi.go:3770, 3402)
//	PartitionCounts   a Metadata request (RequestCached-      Client.RefreshMetadata + Partitions          Conn.ReadPartitions (conn.go:966)             GetMetadata(&topic)
//	                  Metadata with a 1ns age)
//	Rejoin            counts in the range JoinGroup user      counts in SubscriptionUserData               counts in GroupBalancer.UserData (called on   no user data, no forced rebalance:
//	                  data; ForceMetadataRefresh +            (balance_strategy.go:79-82); cancel the      every join, groupbalancer.go:28-34); end      Unsubscribe + Subscribe (a new member id,
//	                  ForceRebalance; the leader refreshes    session context, the next Consume rejoins;   the generation by returning from a            a full rebalance)
//	                  metadata before planning                the leader refreshes metadata before         gen.Start function (consumergroup.go:375)
//	                                                          balancing
//	OpenReader        a direct kgo client:                    sarama.Consumer partition consumers, no      the consumer's fetch loops, no group          an unsubscribed kafka.Consumer:
//	(optional)        AddConsumePartitions / SetOffsets       ConsumerGroup                                                                              IncrementalAssign at exact offsets
//	Seek (optional)   SetOffsets                              restart the partition consumer               restart the partition's fetch loop            Seek / Assign
//	Pause / Resume    PauseFetchPartitions / Resume...        stop / restart the partition consumer        per-partition fetch: stop reading             Pause / Resume
//	Produce           Produce with a promise                  AsyncProducer Input + Successes/Errors       Writer with Completion (Async)                Produce + Events channel
//	Flush             Flush                                   nothing buffered past Flush.Frequency:       nothing (the Writer sends per BatchTimeout)   Flush(timeoutMs)
//	                                                          return nil
//	key partitioner   UniformBytesPartitioner (murmur2 keys)  NewMurmur2Partitioner                        Murmur2Balancer                               partitioner=murmur2_random
//	idempotence       yes (the default)                       Producer.Idempotent (Version >= 0.11,        none: Idempotent() false                      enable.idempotence
//	                                                          Net.MaxOpenRequests = 1)
//	transactions      BeginTransaction / EndTransaction;      Producer.Transaction.ID, BeginTxn,           none: not a Transactor                        InitTransactions, BeginTransaction,
//	                  AddOffsetsToTxn + TxnOffsetCommit       AddOffsetsToTxn, CommitTxn                                                                 SendOffsetsToTransaction, CommitTransaction
//	group protocol    RangeBalancer                           BalanceStrategyRange                         RangeGroupBalancer                            partition.assignment.strategy=range
//	KIP-848           ServerSideBalancer + kgo's own          none: Unimplemented                          none: Unimplemented                           group.protocol=consumer,
//	(GroupProtocol-   RangeBalancer; a failed Assigned leaves                                                                                            group.remote.assignor=range; Incremental-
//	Consumer)         the partitions paused until Rejoin(nil)                                                                                            Assign/Unassign; failed ones paused until Rejoin(nil)
//
// The optional [Administrator] (package admin's offset reset), per client:
//
//	method            franz-go (kadm on a kgo client)         IBM/sarama                                   segmentio/kafka-go                            confluent-kafka-go
//	GroupState        kadm DescribeGroups                     DescribeGroupsRequest to Coordinator(group)  Client.DescribeGroups                         AdminClient.DescribeConsumerGroups
//	Committed         kadm FetchOffsets                       OffsetFetchRequest to Coordinator(group)     Client.OffsetFetch                            AdminClient.ListConsumerGroupOffsets
//	ListOffsets       kadm ListStart/End/AfterMilli offsets   one OffsetRequest per leader                 Client.ListOffsets                            metadata, then AdminClient.ListOffsets
//	PartitionCounts   a Metadata request (as the consumer)    MetadataRequest to one broker                Conn.ReadPartitions                           GetMetadata
//	CommitAsAdmin     kadm CommitOffsets (Offset.Metadata;    OffsetCommitRequest (generation -1, no       Client.OffsetCommit with GenerationID -1      AlterConsumerGroupOffsets (with Metadata)
//	                  kmsg's generation -1, no member id)     member id) to Coordinator(group)             and no MemberID
//
// Every client exposes the Kafka protocol error code, so ErrorCode
// implementations extract it and call [polykafka.CodeForKafka].
//
// # Group protocol
//
// Every adapter joins its group with the eager "range" protocol, the one
// all four clients implement, so that members running on different
// backends can share a group. Adapters whose client lets them set the
// JoinGroup user data put [EncodeUserData] of the counts given to
// [Consumer.Rejoin] in it: a non-leader that rejoins with unchanged
// metadata gets the current generation back and nothing is rebalanced
// (kafka-go#646), while changed user data makes the coordinator rebalance.
// A leader that reads user data ([DecodeUserData]) refreshes its metadata
// until it sees every partition a member reported before it plans.
//
// Under [GroupProtocolConsumer] (KIP-848) none of this applies: the
// coordinator assigns, so there is no leader, no user data and no forced
// rebalance; an adapter joins with its client's KIP-848 support or fails
// OpenConsumer with code Unimplemented.
//
// Correctness never depends on Rejoin: the start-offset rule decides from
// the stored positions and the baseline, so a partition assigned late still
// starts at its earliest offset. Rejoin only shortens the wait.
package driver

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/polykafka/polykafka"
)

// GroupHandler is implemented by package consumer and called by consumer
// drivers around each rebalance. No two GroupHandler calls run at the same
// time, and none runs concurrently with itself.
type GroupHandler interface {
	// Assigned is called after tps were assigned to this member and before
	// any record of tps is fetched. It returns, for each of tps, the offset
	// at which the partition must start and the metadata of the group's
	// commit for it (an adapter that must write the start position through
	// its client, as sarama's offset managers do, writes this metadata so
	// that the baseline it carries is kept). The driver starts exactly
	// there and applies no reset policy of its own.
	//
	// If Assigned returns an error, the driver does not fetch tps (they
	// stay assigned in the group, idle) until they are assigned again. It
	// does nothing else: the portable layer decides whether and when to
	// make the group rebalance (Rejoin) so that Assigned runs again.
	Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error)
	// Revoked is called before tps are given up: on a rebalance or from
	// Close. Commits made during the call succeed if the member still owns
	// tps. A driver whose client cannot tell a lost assignment from a
	// revoked one calls Revoked: the handler's commit
	// then fails, which loses nothing (the next owner re-reads from the
	// last commit). After Revoked returns, Fetch returns no records of tps
	// until they are assigned again.
	Revoked(ctx context.Context, tps []polykafka.TopicPartition)
	// Lost is called when tps were lost without a clean revoke (session
	// expired, member fenced). Commits for them would fail.
	Lost(ctx context.Context, tps []polykafka.TopicPartition)
}

// ConsumerConfig is what the portable consumer asks a driver to open.
type ConsumerConfig struct {
	// Group is the consumer group id. Never empty.
	Group string
	// Topics are the subscribed topics. Never empty. The portable layer
	// checks that they exist right after opening (through PartitionCounts)
	// and closes the member at once if one does not.
	Topics []string
	// Handler receives the rebalance calls. Never nil.
	Handler GroupHandler
	// ReadCommitted reads only records of committed transactions (and
	// non-transactional records). False reads everything
	// (read_uncommitted). With it, Committed also asks for stable offsets
	// (KIP-447 require_stable) where the client can: while a transaction's
	// offset commit is pending it fails with the partition's
	// UNSTABLE_OFFSET_COMMIT (classified Unavailable) instead of returning
	// the commit of before the transaction, and the portable layer retries.
	ReadCommitted bool
	// GroupProtocol is the group membership protocol the member joins
	// with. A driver whose client lacks it fails OpenConsumer with code
	// Unimplemented, naming consumer.Options.GroupProtocol.
	GroupProtocol GroupProtocol
	// Logger receives the driver's and the native client's logs. Never nil.
	Logger *slog.Logger
}

// GroupProtocol is a consumer group membership protocol.
type GroupProtocol int

const (
	// GroupProtocolClassic is the classic protocol (JoinGroup / SyncGroup,
	// a client-side leader plans the assignment): the eager "range"
	// protocol described in the package doc.
	GroupProtocolClassic GroupProtocol = iota
	// GroupProtocolConsumer is KIP-848's consumer protocol
	// (ConsumerGroupHeartbeat, Kafka 4.0+): the broker's group coordinator
	// assigns partitions incrementally, with no client-side leader and no
	// JoinGroup user data. The coordinator notices new partitions of
	// subscribed topics by itself, so Rejoin is called only with nil counts
	// (to run Assigned again for partitions whose Assigned failed), and
	// Assigned, Revoked and Lost receive incremental changes: only the
	// partitions added to or taken from this member.
	GroupProtocolConsumer
)

// String returns "classic" or "consumer" (Kafka's group.protocol values).
func (p GroupProtocol) String() string {
	switch p {
	case GroupProtocolClassic:
		return "classic"
	case GroupProtocolConsumer:
		return "consumer"
	}
	return "GroupProtocol(" + strconv.Itoa(int(p)) + ")"
}

// Idempotence is an idempotence requirement. It is the type of package
// producer's Options.Idempotence too (producer.Idempotence is an alias), so
// the values are defined once, here.
type Idempotence int

const (
	// IdempotenceAuto (the zero value) asks for an idempotent producer if
	// the client has one; the driver's Idempotent reports what it got. The
	// portable producer passes it to a driver only with Acks -1 (with
	// other acks it passes IdempotenceOff).
	IdempotenceAuto Idempotence = iota
	// IdempotenceRequired asks for an idempotent producer; a driver whose
	// client has none fails OpenProducer with code Unimplemented.
	IdempotenceRequired
	// IdempotenceOff asks for a producer that is not idempotent.
	IdempotenceOff
)

// Compression is a batch compression codec. It is the type of package
// producer's Options.Compression too (producer.Compression is an alias).
type Compression string

// Compression codecs. The zero value is CompressionNone.
const (
	CompressionNone   Compression = ""
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
)

// ProducerConfig is what the portable producer asks a driver to open. The
// portable layer has validated every field. Native options given to the
// adapter's constructor are applied after these, so they win.
type ProducerConfig struct {
	// Acks is the number of acknowledgements: -1 (all in-sync replicas),
	// 1 (leader) or 0 (none).
	Acks int
	// Idempotence says whether the producer should be idempotent. Never
	// other than IdempotenceOff unless Acks is -1 (the zero value,
	// IdempotenceAuto, asks for idempotence if the client has it).
	Idempotence Idempotence
	// TransactionalID, when not empty, makes the producer transactional
	// with this id (implies IdempotenceRequired). A driver that is not a
	// Transactor fails OpenProducer with code Unimplemented.
	TransactionalID string
	// Compression is the batch codec, one of the Compression constants
	// (CompressionNone, the zero value, compresses nothing).
	Compression Compression
	// ManualPartitions is set when records may carry their own partition
	// (Partition >= 0). When false, every record's Partition is
	// polykafka.AnyPartition.
	ManualPartitions bool
	// Linger is how long a batch may wait for more records. Zero means do
	// not wait.
	Linger time.Duration
	// BatchBytes is the maximum size of a batch in bytes. Zero means the
	// client's default.
	BatchBytes int32
	// DeliveryTimeout is Kafka's delivery.timeout.ms: how long the client
	// retries a record before it fails it, counted from Produce. Never
	// zero, and longer than Linger. The driver derives its client's
	// native retry settings from it (attempt counts and backoffs where the
	// client counts attempts instead of time), unless the application set
	// those natively; it does not retry on its own beyond them. A client
	// that fails a record before the timeout whatever its settings (it
	// gives up when it cannot find a leader) has the failure reported as
	// an *EarlyFailure, and the portable producer decides.
	DeliveryTimeout time.Duration
	// Delivered is called by the driver once per record handed to
	// Produce, with the record, the client's error (nil on success,
	// unclassified: the portable layer classifies it with ErrorCode) and
	// the done function given to Produce. It is the portable layer's
	// single completion function (one for the producer, so the record path
	// allocates nothing for it): it classifies the error, does the
	// in-flight accounting that Flush and Close wait on, and calls done.
	// Never nil.
	Delivered func(r *polykafka.Record, err error, done func(*polykafka.Record, error))
	// Logger receives the driver's and the native client's logs. Never nil.
	Logger *slog.Logger
}

// EarlyFailure is the error a driver passes to Delivered for a record its
// client failed before the record's delivery timeout
// (ProducerConfig.DeliveryTimeout) passed, where the client has no
// delivery timeout of its own to derive its retries from (sarama fails a
// record at once when it cannot find the partition's leader, as during an
// outage). The driver only reports the facts; the portable producer
// decides: a retryable failure (code Unavailable) is produced again after
// Backoff, until the deadline of the record's first Produce; any other is
// delivered as Err.
type EarlyFailure struct {
	// Err is the client's error, unclassified.
	Err error
	// Deadline is when this Produce's delivery timeout passes.
	Deadline time.Time
	// Backoff is the client's own retry backoff, which the producer waits
	// before producing the record again. Zero means 100ms.
	Backoff time.Duration
}

// Error returns Err's text.
func (e *EarlyFailure) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *EarlyFailure) Unwrap() error { return e.Err }

// Backend opens consumers and producers on one client library with one
// native configuration. It is what an adapter's constructor returns and
// what applications pass to consumer.New and producer.New, so that switching
// the backend is a one-line change.
type Backend interface {
	// Name returns the backend's short name, for example "franz".
	Name() string
	// OpenConsumer creates a group member, joins the group and starts
	// consuming cfg.Topics. It returns without waiting for the first
	// assignment, and within ctx's deadline.
	OpenConsumer(ctx context.Context, cfg ConsumerConfig) (Consumer, error)
	// OpenProducer creates a producer, within ctx's deadline.
	OpenProducer(ctx context.Context, cfg ProducerConfig) (Producer, error)
}

// Consumer is one member of one consumer group.
//
// Fetch is called from one goroutine at a time. Every other method may be
// called concurrently with Fetch and with each other, including from
// inside GroupHandler calls. Drivers do not retry failed operations beyond
// what their client does on its own; they return the error, and ErrorCode
// classifies it. Every method that takes a context returns by the time it
// is done (with ctx's error or one wrapping it).
type Consumer interface {
	// Fetch returns the next records of assigned partitions whose start
	// was decided, at most max, appended to buf[:0] (buf may be nil; the
	// caller passes back a slice only when it no longer uses the records
	// in it). It blocks until it has at least one record or an error, or
	// ctx is done; it may return no records and a nil error. Records of
	// one partition are consecutive and in offset order. Each record's
	// Native field is set to the client's record.
	//
	// Errors are returned with the records fetched alongside them, never
	// filtered: errors about one partition as *PartitionError values
	// (several joined with errors.Join), anything else as it is. A
	// partition whose fetch offset is out of range (ErrorCode
	// OffsetOutOfRange) is reported once and not fetched again until Seek
	// or a new assignment. The portable layer decides which errors end
	// the consumer.
	Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error)
	// Commit synchronously commits offsets (with their metadata) for the
	// group, in the member's current generation.
	Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error
	// Committed returns the group's committed offsets for every partition
	// of topics that has one; partitions without a commit are absent. It
	// is Admin.Committed for the member's own group.
	Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error)
	OffsetLister
	PartitionCounter
	// Rejoin makes the group rebalance soon, for one of two reasons:
	// partitions were added (counts are the partition counts just read),
	// or, with nil counts, the portable layer wants Assigned to run again
	// after it failed (nothing grew: the rebalance must be forced). The
	// driver does what its client allows (see the package doc): counts in
	// its JoinGroup user data where it can set it, a forced rejoin, and,
	// when it leads, planning with metadata showing at least the counts
	// members reported. It does not wait for the rebalance. Nothing may
	// depend on it for correctness.
	Rejoin(ctx context.Context, counts map[string]int32) error
	// Close calls Revoked for the partitions still owned, leaves the group
	// and releases the client. It should return by ctx's deadline; the
	// portable layer bounds its wait for drivers whose client cannot be
	// bounded. After Close only As and ErrorCode are called.
	Close(ctx context.Context) error

	Aser
	ErrorCoder
}

// The cluster queries below are declared once and embedded by Consumer,
// Producer, Reader and Admin; an adapter implements them once, on a type
// its consumer, producer, reader and admin share.

// OffsetLister resolves positions in partitions (a ListOffsets request).
type OffsetLister interface {
	// ListOffsets resolves a position for each of tps: at is
	// polykafka.OffsetEarliest (log start offset), polykafka.OffsetLatest
	// (high watermark), or a timestamp in Unix milliseconds (the first
	// offset whose timestamp is at or after it; -1 if there is none).
	ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error)
}

// PartitionCounter reads partition counts (a Metadata request).
type PartitionCounter interface {
	// PartitionCounts returns the partition count of each topic from a
	// metadata request sent by this call (never from a cache). A missing
	// topic is an error for which ErrorCode returns NotFound.
	PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error)
}

// ErrorCoder classifies the errors of a driver.
type ErrorCoder interface {
	// ErrorCode classifies an error returned by this driver (or passed to
	// ProducerConfig.Delivered).
	ErrorCode(err error) polykafka.ErrorCode
}

// Aser exposes a driver's native client.
type Aser interface {
	// As sets *target to a native type and reports whether it did; see the
	// adapter's package doc. It returns false for nil.
	As(target any) bool
}

// PartitionError is an error of one partition, returned by Fetch.
type PartitionError struct {
	polykafka.TopicPartition
	Err error
}

// Error returns "topic/partition: err".
func (e *PartitionError) Error() string { return e.TopicPartition.String() + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *PartitionError) Unwrap() error { return e.Err }

// PartitionErrors returns the *PartitionError values in err (one, or
// several joined with errors.Join), and the rest of err joined (nil if
// there is none).
func PartitionErrors(err error) (parts []*PartitionError, rest error) {
	if err == nil {
		return nil, nil
	}
	var others []error
	var walk func(error)
	walk = func(e error) {
		var pe *PartitionError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &pe) {
			parts = append(parts, pe)
			return
		}
		others = append(others, e)
	}
	walk(err)
	return parts, errors.Join(others...)
}

// Pauser is an optional interface of Consumer: pause and resume fetching
// of partitions. Records already returned by Fetch are not recalled.
// Partitions not assigned are ignored (the portable layer validates).
type Pauser interface {
	Pause(ctx context.Context, tps []polykafka.TopicPartition) error
	Resume(ctx context.Context, tps []polykafka.TopicPartition) error
}

// Seeker is an optional interface of Consumer: restart fetching of
// assigned partitions at given offsets. After Seek returns, Fetch returns
// no record of those partitions fetched from an earlier position. The
// portable layer uses it to apply its out-of-range policy in mid-stream;
// without it, it commits the position and makes the group rebalance, so
// that Assigned decides again.
type Seeker interface {
	Seek(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error
}

// Producer sends records.
//
// Every method may be called concurrently.
type Producer interface {
	// Produce hands r to the client and returns without waiting for the
	// broker. The driver calls ProducerConfig.Delivered(r, err, done)
	// exactly once, possibly on another goroutine and possibly before
	// Produce returns; on success it has set r's Partition, Offset and
	// Timestamp first. The driver may read r until then, and never after.
	//
	// A record whose Partition is >= 0 goes to that partition (the
	// client's error if it does not exist); a record with Partition
	// polykafka.AnyPartition and a non-nil key goes to KeyPartition(key,
	// partitions); a nil key goes to one the client picks. If ctx is done
	// before the record is buffered, the driver reports ctx's error.
	Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error))
	// Flush asks the client to send what it buffers now, without waiting
	// for Linger. It may wait for those records; the portable layer waits
	// for their deliveries itself.
	Flush(ctx context.Context) error
	PartitionCounter
	// Refresh makes the client's partitioner see at least counts soon: it
	// refreshes the client's metadata now, or within the client's metadata
	// expiry where it has no refresh call (kafka-go). Called when partition
	// discovery saw topics grow.
	Refresh(ctx context.Context, counts map[string]int32) error
	// Idempotent reports whether the producer is idempotent.
	Idempotent() bool
	// Close fails what is still buffered (reporting it through Delivered,
	// possibly after Close returned: the portable layer waits for every
	// Delivered call itself) and releases the client. The portable layer
	// has flushed before, and bounds its wait for Close.
	Close(ctx context.Context) error

	Aser
	ErrorCoder
}

// Transactor is an optional interface of Producer: Kafka transactions.
// OpenProducer makes the producer transactional (and initialises it) when
// ProducerConfig.TransactionalID is set. The portable layer allows one
// transaction at a time and flushes before committing.
type Transactor interface {
	// BeginTransaction starts a transaction: records produced until it
	// ends belong to it.
	BeginTransaction(ctx context.Context) error
	// SendOffsets adds a consumer group's offsets to the transaction: they
	// are committed if and only if the transaction commits. group is the
	// consumer's group metadata, as GroupMetadata returns it.
	SendOffsets(ctx context.Context, group GroupMetadata, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error
	// EndTransaction commits (commit true) or aborts the transaction. The
	// portable layer has flushed and waited for every delivery first.
	EndTransaction(ctx context.Context, commit bool) error
}

// GroupMetadata identifies a group member for transactional offset
// commits (KIP-447): the broker fences offsets from a stale generation.
type GroupMetadata struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string // empty unless static membership is configured
}

// GroupMember is an optional interface of Consumer: the member's current
// group metadata, for Transactor.SendOffsets. ok is false while the member
// has no generation.
type GroupMember interface {
	GroupMetadata() (md GroupMetadata, ok bool)
}

// PartitionReader is the optional interface of Backend for consumption
// without a consumer group: chosen partitions (or every partition of some
// topics, new ones included), positions kept in an offsetstore.Store by the
// portable layer (consumer.NewReader), which decides where each partition
// starts with the same rule as a group member.
type PartitionReader interface {
	// OpenReader opens a client that fetches no partition until Assign.
	OpenReader(ctx context.Context, cfg ReaderConfig) (Reader, error)
}

// ReaderConfig is what the portable layer asks of a group-less reader.
type ReaderConfig struct {
	// ReadCommitted reads only records of committed transactions.
	ReadCommitted bool
	// Logger receives the driver's and the native client's logs. Never nil.
	Logger *slog.Logger
}

// Reader fetches chosen partitions without a group. Fetch is called from
// one goroutine at a time; every other method may be called concurrently
// with it and with each other.
type Reader interface {
	// Assign starts fetching each partition at its offset, exactly (no
	// reset policy): a partition not fetched yet is added; one already
	// fetched restarts there, and Fetch returns none of its records
	// fetched from an earlier position. Other partitions are unaffected.
	Assign(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error
	// Fetch is Consumer.Fetch for the assigned partitions (an out-of-range
	// partition is reported once and not fetched again until Assign).
	Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error)
	OffsetLister
	PartitionCounter
	// Close stops fetching and releases the client.
	Close(ctx context.Context) error
	Aser
	ErrorCoder
}

// Administrator is an optional interface of Backend: administration of a
// consumer group from outside it, which package admin uses to reset a
// group's positions. A backend without it makes package admin fail with
// code Unimplemented.
type Administrator interface {
	// OpenAdmin opens an admin client, within ctx's deadline. It joins no
	// group.
	OpenAdmin(ctx context.Context, cfg AdminConfig) (Admin, error)
}

// AdminConfig is what the portable layer asks of an admin client.
type AdminConfig struct {
	// Logger receives the driver's and the native client's logs. Never nil.
	Logger *slog.Logger
}

// GroupState describes a consumer group as its coordinator reports it
// (DescribeGroups).
type GroupState struct {
	// State is the coordinator's state name: "Empty", "Stable",
	// "PreparingRebalance", "CompletingRebalance" or "Dead" (a group that
	// does not exist; an adapter whose client reports GROUP_ID_NOT_FOUND
	// instead returns "Dead" with no error).
	State string
	// Members is the number of active members.
	Members int
}

// Admin administers consumer groups without joining them. Every method may
// be called concurrently. As for Consumer, drivers do not retry beyond
// what their client does, every method that takes a context returns by
// the time it is done, and errors are classified with ErrorCode.
type Admin interface {
	// GroupState describes group. A group that does not exist is
	// reported as State "Dead" with no members, not as an error.
	GroupState(ctx context.Context, group string) (GroupState, error)
	// Committed returns group's committed offsets, with their metadata,
	// for every partition of topics that has one; partitions without a
	// commit are absent. A group that does not exist has no commits: an
	// empty map, not an error (kfake answers GROUP_ID_NOT_FOUND).
	Committed(ctx context.Context, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error)
	// ListOffsets reads with read_uncommitted.
	OffsetLister
	PartitionCounter
	// CommitAsAdmin commits offsets, with their metadata, for group in one
	// OffsetCommit request outside any generation (generation -1, empty
	// member id). The broker accepts it only while the group has no
	// active member, and refuses it otherwise (UNKNOWN_MEMBER_ID or
	// ILLEGAL_GENERATION, classified Rebalancing). An error of one
	// partition is reported as a *PartitionError (several joined).
	CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error
	// Close releases the client. After Close only ErrorCode is called.
	Close(ctx context.Context) error
	ErrorCoder
}
