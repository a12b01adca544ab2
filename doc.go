// Package polykafka is a portable Kafka consumer and producer API over the
// Go Kafka clients, with one set of semantics whichever client runs
// underneath. Each client is reached through an adapter; adapters ship for
// twmb/franz-go ([github.com/polykafka/polykafka/adapters/franz]), IBM/sarama
// ([github.com/polykafka/polykafka/adapters/sarama]), segmentio/kafka-go
// ([github.com/polykafka/polykafka/adapters/kafkago]) and
// confluent-kafka-go ([github.com/polykafka/polykafka/adapters/confluent],
// cgo). Other adapters implement the contract in
// [github.com/polykafka/polykafka/adapters/driver] and check themselves with
// the conformance suite in [github.com/polykafka/polykafka/adapters/drivertest].
//
// This root package holds the types both directions share: [Record],
// [Header], [TopicPartition], [Connection], and the error classification
// ([ErrorCode], [Error], [Code]). The portable types live in the
// sub-packages:
//
//   - [github.com/polykafka/polykafka/consumer]: a consumer group member (or
//     a reader without a group) with the start-offset guarantee (see
//     below), commits and rebalance hooks.
//   - [github.com/polykafka/polykafka/producer]: synchronous and asynchronous
//     sends with Java-compatible key partitioning, and transactions.
//   - [github.com/polykafka/polykafka/offsetstore]: where positions live
//     (the group's commits in Kafka, memory, Redis, or your own).
//   - [github.com/polykafka/polykafka/admin]: resetting a group's positions,
//     and its lag in every partition.
//   - [github.com/polykafka/polykafka/polyotel]: opt-in OpenTelemetry
//     tracing and metrics (the consumer and producer never import
//     OpenTelemetry).
//
// # The start-offset guarantee
//
// A group that reads with "latest" semantics loses every record written to
// a partition between its creation and the moment the group notices it.
// polykafka decides every start offset in shared code, before the first
// record of a partition is handed out, and commits that decision:
//
//   - a partition with a stored position resumes there ("committed");
//   - if the group has never read the topic, the initial policy applies
//     (latest by default) ("initial");
//   - a partition created after the group started reading the topic starts
//     at its earliest offset ("new-partition");
//   - a stored position outside the log (deleted by retention) follows the
//     out-of-range policy, earliest by default ("out-of-range").
//
// The rule is [github.com/polykafka/polykafka/discovery.Decide].
//
// # Errors
//
// Every error returned by the portable types wraps the native client's
// error in an [*Error] carrying an [ErrorCode], so both
// errors.Is(err, polykafka.ErrNotFound) and errors.As(err, &nativeErr) work.
// Context errors keep matching errors.Is: the caller's context.Canceled is
// returned unwrapped; an expired deadline is context.DeadlineExceeded
// itself, or, where the operation was waiting for the cluster, an
// Unavailable [*Error] saying what did not answer, which still matches
// errors.Is(err, context.DeadlineExceeded).
package polykafka
