// Package offsetstore defines where a consumer group keeps its positions,
// and provides the stores polykafka ships: the group's committed offsets in
// Kafka (the default; see [NewKafka]) and an in-process memory store
// ([NewMemory]); package offsetstore/redis (redisstore) keeps them in
// Redis. Package storetest is the conformance suite every Store passes;
// run it against your own Store to plug in a database.
//
// A position records, besides the next offset to read, the baseline of its
// topic: the partition count the topic had when the group first read it.
// The start-offset rule needs it to tell a partition created after the group
// started (start at earliest) from one that another member of the same first
// generation has simply not committed yet (start per the initial policy).
package offsetstore

import (
	"context"

	"github.com/polykafka/polykafka"
)

// Position is a stored position of a group in one partition.
type Position struct {
	// Offset is the next offset to consume. Never negative.
	Offset int64
	// Baseline is the partition count of the topic when the group first
	// read it, or 0 if unknown (a position written by a client other than
	// polykafka).
	Baseline int32
}

// Store keeps the positions of consumer groups.
//
// Implementations must be safe for concurrent use. A Save must be visible
// to every Load that starts after it returns, from any process sharing the
// store. Errors should be *polykafka.Error values (or wrap them) so callers
// can classify them; an unclassified error counts as Unknown.
type Store interface {
	// Load returns every stored position of group in topic, keyed by
	// partition. A topic the group never read yields an empty map.
	Load(ctx context.Context, group, topic string) (map[int32]Position, error)
	// Save stores positions of group, replacing earlier ones for the same
	// partitions and leaving the others alone. It is all or nothing only
	// if the implementation says so.
	Save(ctx context.Context, group string, positions map[polykafka.TopicPartition]Position) error
}
