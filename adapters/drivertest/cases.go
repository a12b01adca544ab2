package drivertest

// cases is the suite: each behaviour, and the rule a failure reports.
func cases() []testCase {
	return []testCase{
		// Producer and round trip.
		{"ProduceConsumeRoundTrip", "records come back with the key, value and headers they were sent with; a nil key stays nil and an empty value stays empty", testRoundTrip},
		{"KeyedRecordsLandOnMurmur2Partition", "a keyed record goes to murmur2(key) mod partitions, like Kafka's Java client, on every backend", testKeyPartition},
		{"SendReturnsReadBackPosition", "Send returns the partition and offset at which the record is read back", testSendPosition},
		{"AsyncCallbacksDeliveredByFlushAndClose", "every SendAsync callback runs exactly once, by the time Flush returns, and by the time Close returns", testAsyncCallbacks},
		{"RecordPartitionOverride", "with RecordPartition a record goes to its own partition; an out-of-range partition fails with InvalidArgument", testRecordPartition},
		{"MissingTopicIsNotFound", "a consumer of a missing topic fails in New with NotFound", testMissingTopic},
		{"UseAfterCloseIsClosed", "every call after Close fails with Closed, and Close is idempotent", testUseAfterClose},
		{"InvalidOptionsNameTheField", "invalid options fail New with InvalidArgument and an error naming the field", testInvalidOptions},
		{"AsExposesNativeClient", "As exposes the native client, and returns false for nil", testAs},
		{"PollMarkCommitManual", "with CommitManual, only marked records are committed, and only at Commit", testPollManual},
		{"PauseResume", "a paused partition delivers nothing new until resumed", testPauseResume},
		{"ConsumerLag", "Consumer.Lag reports per assigned partition the high watermark minus the processed position and minus the committed position", testConsumerLag},

		// Consumer semantics.
		{"CommitThenRestartResumes", "a restarted group resumes right after the last processed record: nothing lost, nothing repeated", testCommitRestart},
		{"HandlerErrorStopsCommits", "a handler error stops the consumer and nothing at or after the failed record is committed", testHandlerError},
		{"HandlerRetryBacksOff", "with OnError.Retry a failed record is retried until it succeeds and the consumer goes on; after MaxAttempts failures it stops", testHandlerRetry},
		{"HandlerPanicStopsCommits", "a handler panic is an error: the consumer stops and the record is not committed", testHandlerPanic},
		{"RecordsKeptByHandlerStayIntact", "every record reaches the handler once, and a record the handler keeps keeps its own key and value while the consumer reuses its buffer", testRecordsKept},
		{"InitialLatestSkipsHistory", "a new group with Initial=latest reads only records produced after its start decisions", testInitialLatest},
		{"InitialEarliestReadsHistory", "a new group with Initial=earliest reads the whole history", testInitialEarliest},

		{"InitialAtTimeStartsAtTimestamp", "Initial=At(t) starts at the first record whose timestamp is at or after t", testInitialAtTime},
		{"MemoryStoreOverridesKafkaCommits", "with a non-Kafka store, partitions start at the store's positions: the backend applies no reset policy of its own", testMemoryStore},

		{"CommitOnRevoke", "a partition that moves to another member carries the old member's processed offsets, committed at revoke", testCommitOnRevoke},
		{"DuplicatesAfterRebalanceBounded", "clean rebalances under load redeliver at most the record in flight per revoked partition", testDuplicatesBounded},
		{"RunBatchSemantics", "RunBatch hands out consecutive records of one partition, in order, each once; a failed batch is not committed", testRunBatch},
		{"Transactions", "a read-committed consumer sees committed transactions only; offsets sent with a transaction commit with it (Unimplemented where the backend has none)", kafkaStoreOnly("offsets commit with a Kafka transaction", testTransactions)},
		{"ReadCommittedStartsAfterPendingTransaction", "a read-committed member that starts while a transaction's offset commit is pending (the broker answered EndTxn, the markers are not written) fetches stable offsets (KIP-447 require_stable), waits out UNSTABLE_OFFSET_COMMIT and does not re-read what the transaction consumed (the in-process cluster holds the markers back; skipped where the backend has no transactions)", kafkaStoreOnly("offsets commit with a Kafka transaction", testStartAtTransactionCommit)},
		{"ProducerSeesGrowth", "a producer places keys by the new partition count within a few discovery intervals of growth", testProducerSeesGrowth},
		{"NilCallbackAndBadRecord", "SendAsync with a nil callback never panics, and still sends", testNilCallback},
		{"ErrorsWrapOnce", "an error is wrapped once, keeps its class and names the operation", testErrorsWrapOnce},
		{"CloseInsideHandlerFailsAtOnce", "CloseContext with the handler's context (from inside the handler) fails at once with InvalidArgument instead of waiting CloseTimeout", testCloseInsideHandler},
		{"CloseCommitsAfterHandlerOverrun", "a handler that overruns CloseTimeout makes Close say so, and Close still commits the records processed before it: each phase of Close has its own bound", kafkaStoreOnly("watches the driver's commits", testCloseAfterHandlerOverrun)},
		{"JoinGroupMetadataParsesStrictly", "every protocol a member offers in JoinGroup carries a subscription that parses strictly under Kafka's ConsumerProtocolSubscription schema at the version it declares (no missing, no trailing bytes), so Java and librdkafka leaders can read it (in-process cluster only: captured at the broker)", classicOnly("checks the classic JoinGroup subscription; KIP-848 members send no JoinGroup", testJoinMetadataStrict)},
		{"PauseUnassignedIsInvalid", "Pause and Resume of partitions not assigned fail with InvalidArgument; AwaitAssignment waits for the first assignment", testPauseUnassigned},

		// Concurrency.
		{"ConcurrentOrdering", "with Concurrency > 1, ByPartition never has two records of one partition in a handler at once, ByKey never two of one key, each lane in offset order; all modes commit to the end", testConcurrentOrdering},
		{"ConcurrentCommitPrefix", "a partition's commit moves only over its contiguous processed prefix: a record still in its handler holds the commit back however many later records are done (Run and Poll)", testConcurrentCommitPrefix},
		{"ConcurrentRevokeLost", "a revoke waits for the handlers in flight on the revoked partitions and commits their records; a loss cancels their contexts and commits nothing of them", testConcurrentRevokeLost},
		{"ConcurrentBoundedBuffer", "the records a member holds stay within MaxBufferedRecords under a slow handler (fetching pauses), and all are processed when it speeds up", testBoundedBuffer},
		{"CloseInsideConcurrentHandlerFailsAtOnce", "CloseContext with the context of a handler running on a Concurrency goroutine fails at once with InvalidArgument, as from the serial handler", testCloseInsideConcurrentHandler},
		{"DeadLetter", "a record that fails for good goes to <topic>.DLT (or the chosen topic) with its key, value, headers and the polykafka.dlt.* headers, and is committed once written", testDeadLetter},
		{"DeadLetterFailureStops", "a dead-letter write that fails stops the consumer with its error, and the record is not committed: the next member reads it", testDeadLetterFailureStops},

		// Consumption without a group.
		{"ReaderReadsWithoutGroup", "a reader reads every partition without a group, commits nothing to Kafka and keeps its positions (with the baseline) in its store (Unimplemented where the harness declares no reader)", noGroup(testReaderReadsWithoutGroup)},
		{"ReaderChosenPartitions", "a reader of chosen partitions reads only them", noGroup(testReaderChosenPartitions)},
		{"ReaderNewPartitionsFromEarliest", "partitions added while a reader at Initial=latest runs are read from offset 0", noGroup(testReaderNewPartitions)},
		{"ReaderResumesFromStore", "a reader resumes where the last reader of its name stopped, from the store", noGroup(testReaderResumes)},

		// Faults.
		{"SilentBrokerFailsWithinDeadline", "against a broker that accepts connections and never answers, New returns an Unavailable error by its deadline", testSilentBroker},
		{"BrokerUnavailableFailsWithinDeadline", "with no reachable broker, New and Send fail by their context's deadline (Send with an Unavailable error naming Send that still matches context.DeadlineExceeded), and Close still runs every callback, with an Unavailable error saying Close gave up (CloseTimeout), not Closed", testBrokerUnavailable},
		{"StartDecisionCommitRetriedOnRebalancing", "a start decision whose commit is refused as rebalancing is decided again after a new rebalance; the consumer does not stop (in-process cluster only: needs fault injection)", kafkaStoreOnly("the fault is injected into OffsetCommit", testAssignCommitFails)},
		{"PartitionsLostThenRejoined", "a member whose session is lost gets HookLost, rejoins, and reads on with zero loss (in-process cluster only: needs fault injection)", testPartitionsLost},
		{"LostCancelsCommitInFlight", "a member that loses its session while a Commit (1-minute deadline) waits on the store gets HookLost and reads on within seconds: Lost cancels the commit instead of waiting for it (in-process cluster only: needs fault injection)", testLostDuringCommit},
		{"StoreFailureKeepsItsClass", "a Commit whose store fails returns the store's error with its class (Unavailable stays Unavailable, not Rebalancing), and nothing falls back to Kafka", testStoreFailure},
		{"OutageWithinDeliveryTimeoutLosesNothing", "while every connection to the broker is cut, records with a 3s DeliveryTimeout fail as Unavailable within about it, records with a 2m DeliveryTimeout are acknowledged after the outage, each callback runs once and nothing acknowledged is lost (in-process cluster only: cuts connections)", testOutageDeliveryTimeout},
		{"OutageConsumerResumes", "a consumer group member keeps running through an outage of every connection and reads on afterwards: nothing lost, redeliveries bounded (in-process cluster only: cuts connections)", kafkaStoreOnly("waits for the commits in Kafka before the cut", testOutageConsumerResumes)},
		{"SecureConnection", "through polykafka.Connection, with TLS verified against a CA given as PEM (RootCAsPEM), SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 each produce and consume; a wrong password fails consumer.New and the producer well before their deadline with PermissionDenied; no password appears in the clients' logs, in an error, or in %v of the Connection (in-process cluster: a test cannot add users or a CA to a real one)", onceOnly("the connection does not depend on the group protocol or the store", testSecureConnection)},
		{"InjectedCommitFaults", "Commit retries COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT and a moved coordinator (the portable policy), surfaces GROUP_AUTHORIZATION_FAILED at once as PermissionDenied and REBALANCE_IN_PROGRESS as Rebalancing, returns by its deadline from a coordinator slower than it (Unavailable, still DeadlineExceeded), and never commits past the marked records (in-process cluster only: needs fault injection)", kafkaStoreOnly("the faults are injected into OffsetCommit", testInjectedCommitFaults)},
		{"CutAtNew", "a consumer and a producer opened during a short cut of every connection open once the cluster is back (New's deadline is longer than the cut): every callback runs once, nothing is lost or read twice; New against a cluster unreachable past its deadline fails as Unavailable (in-process cluster only: cuts connections)", testCutAtNew},
		{"CutDuringCommit", "a Commit whose connection is cut before the broker answers fails as Unavailable (or succeeds), the member commits again once the broker is back, never past its marked records, and reads on (in-process cluster only: cuts connections)", kafkaStoreOnly("the cut is triggered by the OffsetCommit request", testCutDuringCommit)},
		{"CutDuringRebalance", "a short cut of every connection while the group rebalances for a second member (at its SyncGroup; KIP-848: at the join): the two members come to own every partition, every producer callback runs once, nothing acknowledged is lost, redeliveries are bounded and no member stops (in-process cluster only: cuts connections)", testCutDuringRebalance},
		{"InjectedFetchFaults", "fetches failing with NOT_LEADER_OR_FOLLOWER are retried: nothing lost or read twice, the consumer goes on; TOPIC_AUTHORIZATION_FAILED stops it with PermissionDenied, committed exactly up to what it processed, and the next member reads the rest (in-process cluster only: needs fault injection)", testInjectedFetchFaults},
		{"InjectedMetadataFaults", "New retries a topic's metadata while it says LEADER_NOT_AVAILABLE, within its deadline, then reads; TOPIC_AUTHORIZATION_FAILED fails New at once with PermissionDenied (in-process cluster only: needs fault injection)", testInjectedMetadataFaults},
		{"InjectedHeartbeatRebalance", "a heartbeat answered REBALANCE_IN_PROGRESS makes the member rejoin, commit what it processed on the revoke and read on: nothing lost or read twice (in-process cluster only: needs fault injection)", classicOnly("the fault is injected into the classic Heartbeat; KIP-848 members send ConsumerGroupHeartbeat, which has no REBALANCE_IN_PROGRESS", testInjectedHeartbeatRebalance)},
		{"CancelledContextIsReturnedUnwrapped", "a cancelled context makes Send, New and Poll return context.Canceled itself", testCancelledContext},

		// The start-offset guarantee.
		{"GuaranteeNewPartitionUnderLoad", "partitions added while a latest group runs are read from offset 0: zero records lost", testNewPartitionUnderLoad},
		{"GuaranteeNonLeaderNoticesGrowth", "growth noticed only by a member that is not the group leader still gets the new partitions assigned and read from 0", testNonLeaderDiscovery},
		{"GuaranteePartitionsAddedWhileStopped", "partitions added while the group is stopped are read from earliest after restart; old partitions resume at their commits", testAddedWhileStopped},
		{"GuaranteeMemberDiesAfterDecision", "a member that dies after the start decision but before processing loses nothing: the next owner starts at the stored decision", testDiesAfterDecision},
		{"GuaranteeFirstGenerationRace", "a brand-new group of 3 members at Initial=latest replays no history on any partition", classicOnly("the case provokes the race by holding the first generation's JoinGroup; KIP-848 members send none, so it would pass without provoking anything", testFirstGenerationRace)},
		{"GuaranteeRawClientCommits", "commits written by another client (no polykafka metadata) resume, and uncommitted partitions of that known topic are new (earliest)", testRawClientCommits},
		{"GuaranteeOutOfRangeMidStreamSeek", "a fetch position deleted from under a running consumer goes on where Options.OutOfRange says (Seek)", testOutOfRangeSeek},
		{"GuaranteeOutOfRangeDecisionOutlivesCommitInFlight", "an out-of-range decision is what the store keeps: a commit in flight from before the truncation does not land after it", testOutOfRangeCommitInFlight},
		{"GuaranteeOutOfRangeMidStreamRejoin", "without Seek, an out-of-range fetch position still follows Options.OutOfRange (stored decision, rebalance)", classicOnly("a driver without Seek gets Assigned again through a forced rebalance, which the consumer protocol does not have; KIP-848 backends implement Seek", testOutOfRangeRejoin)},
		{"GuaranteeOneGrowthOneRebalance", "one growth of a topic causes one rebalance", testOneGrowthOneRebalance},
		{"KIP848IncrementalAssignment", "under GroupProtocol consumer (KIP-848), growth assigns only the new partitions (HookAssigned sees just them, nothing is revoked), decided and stored before their first record, and discovery forces no rebalance; a backend without KIP-848 fails New with Unimplemented naming Options.GroupProtocol", kip848Only(testKIP848Incremental)},
		{"GuaranteeTwoMembersTakeover", "two members split the partitions; when one leaves, the other takes over with zero loss", testTwoMembersTakeover},

		// Rebalances while a member works (issue 19).
		{"NoRedeliveryBelowOwnCommit", "records fetched before a rebalance are not handed out after it: no record below an offset this member's commit hook reported committed reaches the handler again", testNoRedeliveryBelowOwnCommit},
		{"RebalanceDuringDecisionGoesOn", "a start decision interrupted by a rebalance (another member joins while the store is slow) is made again in the next generation: no member stops, and records produced afterwards are read", testRebalanceDuringDecision},
		{"RevokingHookFinishesWork", "HookRevoking runs before the revoke commit: records an application's own workers finish and mark there are committed, and the next owner does not read them again", testRevokingHookFinishesWork},

		// Failed sends, new topics and closes (issue 19).
		{"SendMissingTopicThenClose", "a Send to a missing topic fails with NotFound before its deadline, and Close then returns promptly: a record whose Send failed does not hold Close", testSendMissingTopicThenClose},
		{"UnreachableSendThenClose", "with no reachable broker, Close after a failed Send returns promptly, not after CloseTimeout: a record whose Send failed does not hold Close", testUnreachableSendThenClose},
		{"SendToNewTopic", "a Send to a topic created just before succeeds: the producer looks a topic up before it says NotFound", testSendToNewTopic},
		{"CloseDuringJoin", "a member closed while its JoinGroup waits for the rest of the group returns promptly and leaves the group", testCloseDuringJoin},
		{"CloseDuringFirstJoin", "a member closed during its first JoinGroup, which waits for the rest of the group, leaves no member behind: the remaining member soon owns every partition alone", testCloseDuringFirstJoin},
		{"CloseMembersOneByOne", "members of a busy group closed one after another each close promptly: Close does not wait for the group to go quiet", testCloseMembersOneByOne},
		{"ErrorsNameTheOperationOnOneLine", "errors start with the portable operation the user called (consumer: New, producer: Send), and are one line", testErrorsOneLine},
	}
}
