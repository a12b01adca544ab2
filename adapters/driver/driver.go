// Package driver defines the contract that adapters implement so that the
// portable packages consumer and producer can run on a Kafka client library.
// Application code should use packages consumer and producer; only adapter
// authors need this package.
//
// The contract is deliberately small. Policies (where a partition starts,
// when to commit, how to react to new partitions, key partitioning,
// validation) live in the portable layer; an adapter translates calls to
// its client and never decides. In particular an adapter never applies its
// client's own auto.offset.reset: it starts every assigned partition at the
// offset [GroupHandler.Assigned] returned.
//
// # How each client implements the contract
//
// The table below was checked against each client's source (versions in
// go.mod, or in the research notes for clients not yet added):
//
//	method            franz-go (kgo)                          IBM/sarama                                segmentio/kafka-go                          confluent-kafka-go (librdkafka)
//	Assigned (call)   OnPartitionsAssigned, then               ConsumerGroupHandler.Setup (runs after     ConsumerGroup.Next -> Generation; call     rebalance callback on AssignedPartitions
//	                  AdjustFetchOffsetsFn sets the offsets    the POMs are built, before ConsumeClaim);  before gen.Start; one Reader per            (inside Poll); Assign/IncrementalAssign
//	                                                           MarkOffset/ResetOffset to the start        partition with SetOffset(start)             with explicit offsets
//	Revoked / Lost    OnPartitionsRevoked / OnPartitionsLost   ConsumerGroupHandler.Cleanup              end of gen.Start functions                  RevokedPartitions (Unassign); lost =
//	                                                                                                                                                  AssignmentLost() true
//	Fetch             PollRecords                              records from ConsumeClaim channels        per-partition Reader.FetchMessage           Poll / ReadMessage
//	Commit            CommitOffsetsSync + PreCommitFnContext   MarkOffset(metadata) + Commit, verified    Client.OffsetCommit with GenerationID and   CommitOffsets with TopicPartition.Metadata
//	                  (sets the metadata string)               by OffsetFetch (Commit reports nothing)    MemberID (Generation.CommitOffsets has
//	                                                                                                      no metadata)
//	Committed         kadm FetchOffsets                        ClusterAdmin.ListConsumerGroupOffsets      Client.OffsetFetch                          Committed
//	ListOffsets       kadm ListStart/End/AfterMilli offsets    Client.GetOffset                           Client.ListOffsets                          QueryWatermarkOffsets, OffsetsForTimes
//	PartitionCounts   kadm Metadata (a real request)           Client.RefreshMetadata + Partitions        Conn.ReadPartitions (uncached)             GetMetadata(&topic)
//	Rejoin            ForceMetadataRefresh + ForceRebalance;   counts in SubscriptionUserData, cancel     counts in GroupBalancer.UserData; end the   all-topics GetMetadata (the only kind that
//	                  counts in the range JoinGroup user data; the session context (Consume rejoins)     generation (Next rejoins)                   reaches the cgrp), or Unsubscribe+Subscribe
//	                  leader waits for fresh metadata before                                                                                       for eager non-leaders
//	                  balancing
//	Pause / Resume    PauseFetchPartitions / Resume...         ConsumerGroup.Pause / Resume               per-partition Reader: stop reading          Pause / Resume
//	Produce           Produce with a promise                   AsyncProducer Input + Successes/Errors     Writer with Completion (Async)              Produce + Events channel
//	key partitioner   UniformBytesPartitioner (murmur2 keys)   NewMurmur2Partitioner                      Murmur2Balancer                             partitioner=murmur2_random
//	group protocol    RangeBalancer                            BalanceStrategyRange                       RangeGroupBalancer                          partition.assignment.strategy=range
//
// Every client exposes the Kafka protocol error code, so [ErrorCode]
// implementations extract it and call polykafka.CodeForKafka.
//
// # Group protocol
//
// Every adapter joins its group with the eager "range" protocol and puts
// the partition counts it was given by [Consumer.Rejoin] in the JoinGroup
// user data. "range" is the one protocol all four clients implement, so
// members running on different backends can share a group. The counts
// matter because a non-leader that rejoins with unchanged metadata gets
// the current generation back and nothing is rebalanced (kafka-go#646).
package driver

import (
	"context"
	"log/slog"
	"time"

	"github.com/polykafka/polykafka"
)

// GroupHandler is implemented by package consumer and called by consumer
// drivers around each rebalance. No two GroupHandler calls run at the same
// time, and none runs concurrently with itself.
type GroupHandler interface {
	// Assigned is called after tps were assigned to this member and before
	// any record of tps is fetched. It returns the offset at which each of
	// tps must start; the driver starts there exactly and applies no reset
	// policy of its own. Commits made during the call belong to the new
	// generation. If Assigned returns an error, the driver must not fetch
	// tps. If the error is retryable (polykafka.IsRetryable: the group is
	// rebalancing, a broker is unavailable), the driver makes the group
	// rebalance again, which calls Assigned again; otherwise it returns the
	// error from the next Fetch.
	Assigned(ctx context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]int64, error)
	// Revoked is called before tps are given up cleanly: on a rebalance or
	// from Close. Commits made during the call still succeed. After it
	// returns, Fetch returns no records of tps until they are assigned
	// again.
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
	// Logger receives the driver's and the native client's logs. Never nil.
	Logger *slog.Logger
}

// ProducerConfig is what the portable producer asks a driver to open. The
// portable layer has validated every field. Native options given to the
// adapter's constructor are applied after these, so they win.
type ProducerConfig struct {
	// Acks is the number of acknowledgements: -1 (all in-sync replicas),
	// 1 (leader) or 0 (none).
	Acks int
	// Idempotent asks for an idempotent producer. Only set with Acks -1.
	Idempotent bool
	// Compression is one of "none", "gzip", "snappy", "lz4", "zstd".
	Compression string
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
	// Logger receives the driver's and the native client's logs. Never nil.
	Logger *slog.Logger
}

// Backend opens consumers and producers on one client library with one
// native configuration. It is what an adapter's constructor returns and
// what applications pass to consumer.New and producer.New, so that switching
// the backend is a one-line change.
type Backend interface {
	// Name returns the backend's short name, for example "franz".
	Name() string
	// OpenConsumer creates a group member, joins the group and starts
	// consuming cfg.Topics. It returns without waiting for the first
	// assignment.
	OpenConsumer(ctx context.Context, cfg ConsumerConfig) (Consumer, error)
	// OpenProducer creates a producer.
	OpenProducer(ctx context.Context, cfg ProducerConfig) (Producer, error)
}

// Consumer is one member of one consumer group.
//
// Fetch is called from one goroutine at a time. Every other method may be
// called concurrently with Fetch and with each other, including from
// inside GroupHandler calls. Drivers do not retry failed operations beyond
// what their client does on its own; they return the error, and ErrorCode
// says whether a retry may succeed.
type Consumer interface {
	// Fetch returns the next records of assigned partitions, at most max,
	// appended to buf[:0] (buf may be nil; the caller passes back a slice
	// only when it no longer uses the records in it). It blocks until it
	// has at least one record, ctx is done, or an error occurs; it may
	// return no records and a nil error. Records of one partition are
	// consecutive and in offset order. Each record's Native field is set to
	// the client's record.
	Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error)
	// Commit synchronously commits offsets (with their metadata) for the
	// group, in the member's current generation.
	Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error
	// Committed returns the group's committed offsets for every partition
	// of topics that has one; partitions without a commit are absent.
	Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error)
	// ListOffsets resolves a position for each of tps: at is
	// polykafka.OffsetEarliest (log start offset), polykafka.OffsetLatest
	// (high watermark), or a timestamp in Unix milliseconds (the first
	// offset whose timestamp is at or after it; -1 if there is none).
	ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error)
	// PartitionCounts returns the partition count of each topic from a
	// metadata request sent by this call (never from a cache). A missing
	// topic is an error for which ErrorCode returns NotFound.
	PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error)
	// Rejoin makes the group rebalance now because partitions were added:
	// counts are the partition counts just read. The driver puts counts in
	// its JoinGroup metadata (so the rejoin is a real rebalance even from a
	// non-leader), makes sure that whichever member leads plans with
	// metadata showing at least these counts, and triggers the rejoin. It
	// does not wait for the rebalance.
	Rejoin(ctx context.Context, counts map[string]int32) error
	// Close calls Revoked for the partitions still owned, leaves the group
	// and releases the client. ctx bounds the time spent. After Close only
	// As and ErrorCode are called.
	Close(ctx context.Context) error

	// As sets *target to a native type and reports whether it did; see the
	// adapter's package doc. It returns false for nil.
	As(target any) bool
	// ErrorCode classifies an error returned by this driver.
	ErrorCode(err error) polykafka.ErrorCode
}

// Pauser is an optional interface of Consumer: pause and resume fetching
// of partitions. Records already returned by Fetch are not recalled.
type Pauser interface {
	Pause(ctx context.Context, tps []polykafka.TopicPartition) error
	Resume(ctx context.Context, tps []polykafka.TopicPartition) error
}

// Producer sends records.
//
// Every method may be called concurrently.
type Producer interface {
	// Produce hands r to the client and returns without waiting for the
	// broker. done is called exactly once, possibly on another goroutine
	// and possibly before Produce returns, with nil or an error; on success
	// the driver has set r's Partition, Offset and Timestamp. The error is
	// already classified: a *polykafka.Error made with polykafka.NewError,
	// the driver's ErrorCode, and the op "producer: send" (context errors
	// unwrapped, as NewError does). done is the application's callback,
	// passed through without a wrapper so that the record path allocates
	// nothing of the portable layer's; it should not block. The driver may
	// read r until done is called.
	//
	// A record whose Partition is >= 0 goes to that partition; a record
	// with Partition polykafka.AnyPartition goes to the partition the
	// Java-compatible murmur2 hash of its key chooses, or, for a nil key,
	// to one the client picks (sticky, as Kafka's default partitioner).
	// If ctx is done before the record is buffered, done gets ctx's error.
	Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error))
	// Flush returns when done has run for every record handed to Produce
	// before the call, or when ctx is done.
	Flush(ctx context.Context) error
	// Close flushes what it can before ctx is done, fails the rest (their
	// done is called with an error) and releases the client. It returns
	// after done has been called for every record handed to Produce.
	Close(ctx context.Context) error

	// As sets *target to a native type and reports whether it did; see the
	// adapter's package doc. It returns false for nil.
	As(target any) bool
	// ErrorCode classifies an error returned by this driver.
	ErrorCode(err error) polykafka.ErrorCode
}
