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
		{"ProducerSeesGrowth", "a producer places keys by the new partition count within a few discovery intervals of growth", testProducerSeesGrowth},
		{"NilCallbackAndBadRecord", "SendAsync with a nil callback never panics, and still sends", testNilCallback},
		{"ErrorsWrapOnce", "an error is wrapped once, keeps its class and names the operation", testErrorsWrapOnce},
		{"CloseInsideHandlerFailsAtOnce", "Close from inside a handler fails at once with InvalidArgument instead of waiting CloseTimeout", testCloseInsideHandler},
		{"CloseCommitsAfterHandlerOverrun", "a handler that overruns CloseTimeout makes Close say so, and Close still commits the records processed before it: each phase of Close has its own bound", kafkaStoreOnly("watches the driver's commits", testCloseAfterHandlerOverrun)},
		{"PauseUnassignedIsInvalid", "Pause and Resume of partitions not assigned fail with InvalidArgument; AwaitAssignment waits for the first assignment", testPauseUnassigned},

		// Consumption without a group.
		{"ReaderReadsWithoutGroup", "a reader reads every partition without a group, commits nothing to Kafka and keeps its positions (with the baseline) in its store (Unimplemented where the harness declares no reader)", testReaderReadsWithoutGroup},
		{"ReaderChosenPartitions", "a reader of chosen partitions reads only them", testReaderChosenPartitions},
		{"ReaderNewPartitionsFromEarliest", "partitions added while a reader at Initial=latest runs are read from offset 0", testReaderNewPartitions},
		{"ReaderResumesFromStore", "a reader resumes where the last reader of its name stopped, from the store", testReaderResumes},

		// Faults.
		{"SilentBrokerFailsWithinDeadline", "against a broker that accepts connections and never answers, New returns an Unavailable error by its deadline", testSilentBroker},
		{"BrokerUnavailableFailsWithinDeadline", "with no reachable broker, New and Send fail by their context's deadline (Send with an Unavailable error naming Send that still matches context.DeadlineExceeded), and Close still runs every callback, with an Unavailable error saying Close gave up (CloseTimeout), not Closed", testBrokerUnavailable},
		{"StartDecisionCommitRetriedOnRebalancing", "a start decision whose commit is refused as rebalancing is decided again after a new rebalance; the consumer does not stop (in-process cluster only: needs fault injection)", kafkaStoreOnly("the fault is injected into OffsetCommit", testAssignCommitFails)},
		{"PartitionsLostThenRejoined", "a member whose session is lost gets HookLost, rejoins, and reads on with zero loss (in-process cluster only: needs fault injection)", testPartitionsLost},
		{"LostCancelsCommitInFlight", "a member that loses its session while a Commit (1-minute deadline) waits on the store gets HookLost and reads on within seconds: Lost cancels the commit instead of waiting for it (in-process cluster only: needs fault injection)", testLostDuringCommit},
		{"StoreFailureKeepsItsClass", "a Commit whose store fails returns the store's error with its class (Unavailable stays Unavailable, not Rebalancing), and nothing falls back to Kafka", testStoreFailure},
		{"CancelledContextIsReturnedUnwrapped", "a cancelled context makes Send, New and Poll return context.Canceled itself", testCancelledContext},

		// The start-offset guarantee.
		{"GuaranteeNewPartitionUnderLoad", "partitions added while a latest group runs are read from offset 0: zero records lost", testNewPartitionUnderLoad},
		{"GuaranteeNonLeaderNoticesGrowth", "growth noticed only by a member that is not the group leader still gets the new partitions assigned and read from 0", testNonLeaderDiscovery},
		{"GuaranteePartitionsAddedWhileStopped", "partitions added while the group is stopped are read from earliest after restart; old partitions resume at their commits", testAddedWhileStopped},
		{"GuaranteeMemberDiesAfterDecision", "a member that dies after the start decision but before processing loses nothing: the next owner starts at the stored decision", testDiesAfterDecision},
		{"GuaranteeFirstGenerationRace", "a brand-new group of 3 members at Initial=latest replays no history on any partition", testFirstGenerationRace},
		{"GuaranteeRawClientCommits", "commits written by another client (no polykafka metadata) resume, and uncommitted partitions of that known topic are new (earliest)", testRawClientCommits},
		{"GuaranteeOutOfRangeMidStreamSeek", "a fetch position deleted from under a running consumer goes on where Options.OutOfRange says (Seek)", testOutOfRangeSeek},
		{"GuaranteeOutOfRangeMidStreamRejoin", "without Seek, an out-of-range fetch position still follows Options.OutOfRange (stored decision, rebalance)", testOutOfRangeRejoin},
		{"GuaranteeOneGrowthOneRebalance", "one growth of a topic causes one rebalance", testOneGrowthOneRebalance},
		{"GuaranteeTwoMembersTakeover", "two members split the partitions; when one leaves, the other takes over with zero loss", testTwoMembersTakeover},
	}
}
