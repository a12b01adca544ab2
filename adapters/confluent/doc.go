// Package confluent is the polykafka backend for
// github.com/confluentinc/confluent-kafka-go/v2 (package kafka), which wraps
// librdkafka, a C library.
//
//	b := confluent.New(polykafka.Connection{Brokers: []string{"localhost:9092"}}, kafka.ConfigMap{
//		"statistics.interval.ms": 0, // any librdkafka property
//	})
//	c, err := consumer.New(ctx, b, "billing", []string{"orders"}, nil)
//	p, err := producer.New(ctx, b, nil)
//
// # cgo
//
// confluent-kafka-go needs cgo (it links a librdkafka prebuilt for common
// platforms, or a system one with -tags dynamic). Built with
// CGO_ENABLED=0, this package still compiles: [New] then takes any value
// as its configuration and returns a Backend whose OpenConsumer and
// OpenProducer fail with code Unimplemented, so that a program that
// offers several backends builds everywhere. A program that does not
// import this package compiles no C and needs none of confluent-kafka-go's
// dependencies.
//
// # Configuration
//
// [New] takes the portable [polykafka.Connection] and a kafka.ConfigMap of
// librdkafka properties. From the Connection the adapter sets
// bootstrap.servers, client.id ("polykafka" by default),
// security.protocol, sasl.mechanisms / sasl.username / sasl.password, and
// for TLS ssl.ca.pem (RootCAsPEM), enable.ssl.certificate.verification
// (TLS.InsecureSkipVerify) and ssl.certificate.pem / ssl.key.pem (the
// first of TLS.Certificates). An x509.CertPool cannot be read back, so a
// Connection with TLS.RootCAs needs RootCAsPEM instead, or ssl.ca.pem or
// ssl.ca.location in the ConfigMap; TLS.ServerName, the
// VerifyPeerCertificate and VerifyConnection callbacks and
// GetClientCertificate have no librdkafka equivalent either: OpenConsumer
// and OpenProducer fail with Unimplemented, naming the field. With neither
// RootCAsPEM nor RootCAs librdkafka uses the system's CAs. The ConfigMap
// wins over all of these.
//
// librdkafka reports a failed authentication as an error event and keeps
// reconnecting: a call waiting on the client (a metadata request, the
// admin API) fails with that error (PermissionDenied) as soon as it is
// reported, and a record that times out while authentication fails gets
// that error, followed by the timeout.
//
// The adapter also sets go.logs.channel.enable=true and bridges
// librdkafka's logs to the slog.Logger of the portable options (syslog
// levels 0-3 at error, 4 at warn, the rest at debug); a go.logs.channel of
// yours takes the logs instead.
//
// Consumers: the adapter sets, after the ConfigMap (they cannot be
// overridden, because polykafka's guarantees rest on them): group.id,
// enable.auto.commit=false and enable.auto.offset.store=false (the portable
// layer commits), auto.offset.reset=error (every partition is assigned at
// an explicit offset, and a fetch that runs out of range is reported, never
// reset), partition.assignment.strategy=range (the eager protocol shared by
// all polykafka backends), isolation.level (from ReadCommitted),
// enable.partition.eof=false, go.application.rebalance.enable=false and
// go.events.channel.enable=false (rebalances go through the adapter's
// callback inside Poll). fetch.wait.max.ms defaults to 100 ms (librdkafka:
// 500 ms) unless the ConfigMap sets it: kafka.Consumer.Close, and the
// metadata requests queued behind a fetch on its connection, wait for the
// fetch in flight. Session and heartbeat timings, fetch sizes and
// everything else are yours.
//
// Producers: acks, enable.idempotence, transactional.id,
// compression.type, linger.ms (at most 900 s, librdkafka's limit),
// message.timeout.ms (from DeliveryTimeout; a delivery.timeout.ms in the
// ConfigMap wins),
// batch.size, partitioner=murmur2_random (Kafka's Java partitioner: the
// partition of a keyed record is [driver.KeyPartition]; a nil key goes to
// a random partition) and go.delivery.report.fields=none come from
// producer.Options and are set before the ConfigMap, which wins. The
// adapter sets go.delivery.reports=true and go.batch.producer=false after
// it: delivery reports are how Delivered is called.
//
// # Group protocol
//
// Consumers join with the eager "range" protocol, so that members on
// different backends can share a group. librdkafka has no API for the
// JoinGroup user data and no forced rebalance, and an eager member that
// rejoins with unchanged metadata gets the current generation back, so
// Rejoin unsubscribes and subscribes again: the member leaves the group
// and joins as a new member, which makes the whole group rebalance. The
// group's leader reads fresh metadata before it assigns, so it sees the
// partitions that made a member rejoin.
//
// With consumer.Options.GroupProtocol set to GroupProtocolConsumer the
// member runs KIP-848 (group.protocol=consumer, group.remote.assignor=range;
// early access in librdkafka 2.11, which logs that it must not be used in
// production): the rebalance callback answers with IncrementalAssign and
// IncrementalUnassign of only the partitions that changed, nothing is
// resubscribed, and partitions whose start decision failed stay assigned,
// paused, until the portable layer decides them again. Under KIP-848 the
// session timeout and heartbeat interval are the broker's
// (group.consumer.session.timeout.ms, group.consumer.heartbeat.interval.ms),
// not the ConfigMap's. The whole conformance suite passes
// on the in-process broker; it was not run against a real Kafka 4 broker.
//
// librdkafka runs rebalance callbacks only inside Poll. Fetch polls; while
// nobody fetches, the adapter polls in the background (so that the member
// takes part in rebalances) and keeps up to 10000 records for the next
// Fetch.
//
// # Reading without a group
//
// The Backend is a driver.PartitionReader (consumer.NewReader): OpenReader
// creates a kafka.Consumer with the consumer configuration above and a
// group.id of its own, "polykafka-reader-" and 16 random hex digits,
// because librdkafka cannot create a consumer without one. The reader
// never subscribes and never commits, so that group never gets a member
// or an offset. Assign adds partitions with IncrementalAssign at the
// portable layer's offsets; a partition already assigned is restarted
// with IncrementalUnassign then IncrementalAssign (librdkafka drops what
// it fetched from the earlier position), and paused again if it was
// paused. Fetch, ListOffsets, PartitionCounts, Pause and Resume are the
// group consumer's.
//
// # Admin
//
// The Backend is a driver.Administrator (package admin's offset reset):
// OpenAdmin derives a kafka.AdminClient from a kafka.Producer that sends
// nothing (so that its logs reach the slog.Logger). GroupState uses
// DescribeConsumerGroups (GROUP_ID_NOT_FOUND is reported as "Dead"),
// Committed ListConsumerGroupOffsets, ListOffsets the admin ListOffsets
// (after a metadata request, as for consumers), PartitionCounts
// GetMetadata, and CommitAsAdmin AlterConsumerGroupOffsets, whose
// OffsetCommit request carries generation -1, no member id and each
// TopicPartition's Metadata (the baseline).
//
// # As
//
//   - Consumer.As: **kafka.Consumer, **kafka.AdminClient (derived from the
//     consumer; used for ListOffsets and Committed). The same for a
//     reader (its kafka.Consumer has no subscription).
//   - Producer.As: **kafka.Producer. Records produced on it directly are
//     not reported through the portable producer.
//   - Record.Native: *kafka.Message.
//   - errors: kafka.Error through errors.As.
//
// # Errors
//
// kafka.Error codes that are Kafka protocol codes (>= 0) are classified
// with polykafka.CodeForKafka. librdkafka's own codes: auto offset reset
// is OffsetOutOfRange; unknown topic NotFound; unknown partition (a record
// sent to a partition the topic does not have) and invalid arguments
// InvalidArgument; transport, timeouts, all brokers down, waiting for the
// coordinator and a full queue Unavailable; purged records and a destroyed
// client Closed; authentication and SSL PermissionDenied; fencing by a
// newer instance Fenced; an assignment lost and max.poll.interval.ms
// exceeded Rebalancing; not implemented and unsupported features
// Unimplemented.
//
// # Limitations
//
//   - A delivery report carries no timestamp: the adapter stamps records
//     that have none at Produce (millisecond precision) and reports that
//     timestamp; on a topic with LogAppendTime the broker's timestamp
//     differs.
//   - Close and the commit of a consumer cannot be bounded inside
//     librdkafka: calls that take a context return when it ends and leave
//     the librdkafka call to finish on its own (bounded by librdkafka's
//     timeouts); Close waits for them before destroying the client.
//   - librdkafka reports a fetch out of range without its partition; the
//     adapter finds the partition by comparing the positions of the
//     assigned partitions with their log start and end offsets.
//   - Seek uses SeekPartitions; librdkafka refuses to seek a partition
//     whose fetch stopped (out of range with auto.offset.reset=error), so
//     such a partition is restarted by assigning the member's partitions
//     again (eager librdkafka changes an assignment only as a whole): the
//     others continue at their position, and paused ones are paused again.
//   - Consumer group metadata for transactions (KIP-447) is built in
//     librdkafka's serialized form, because the binding builds a
//     kafka.ConsumerGroupMetadata only from a live kafka.Consumer.
//   - The out-of-range search lists offsets within Fetch's context
//     (librdkafka's ListOffsets takes about a second on kfake): a Fetch
//     whose context ends first returns librdkafka's error without its
//     partition, joined with the context's error.
//   - A reader's kafka.Consumer has a group.id (see "Reading without a
//     group"): librdkafka looks up that group's coordinator, which is
//     harmless, and the group stays empty.
//   - Close unsubscribes and polls until nothing is assigned and no
//     rebalance event is queued before it closes librdkafka: an assign
//     called from a rebalance callback raised during kafka.Consumer.Close
//     can wait forever (librdkafka#4884). It does not wait for the rest of
//     the group to settle.
package confluent
