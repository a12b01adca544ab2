package consumer

import (
	"context"
	"slices"

	"github.com/polykafka/polykafka"
)

// PartitionLag is how far this member is behind in one assigned partition.
type PartitionLag struct {
	polykafka.TopicPartition
	// End is the partition's high watermark: the offset the next record
	// written to it will get.
	End int64
	// Processed is the next offset to process: every record before it was
	// handled (Run, RunBatch) or marked (Poll).
	Processed int64
	// Committed is the position committed for the group (the decided start
	// until the first commit of processed records).
	Committed int64
	// Lag is End - Processed: records written and not processed yet.
	Lag int64
	// CommittedLag is End - Committed: records a new owner of the partition
	// would read from the committed position (Lag plus what is processed
	// and not committed yet).
	CommittedLag int64
}

// Lag returns, for each partition assigned to this member (sorted), its
// high watermark and how far the processed and committed positions are
// behind it. It asks the cluster for the high watermarks (one ListOffsets
// request per broker), so it costs a round trip: call it for metrics or on
// demand, not per record. With ReadCommitted the end is the last stable
// offset where the backend lists it so. A member with no partition returns
// an empty slice.
func (c *Consumer) Lag(ctx context.Context) ([]PartitionLag, error) {
	const op = "consumer: Lag"
	if c.closed.Load() {
		return nil, polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	c.mu.Lock()
	states := make([]*partState, 0, len(c.parts))
	for _, ps := range c.parts {
		states = append(states, ps)
	}
	c.mu.Unlock()
	out := []PartitionLag{}
	if len(states) == 0 {
		return out, nil
	}
	tps := make([]polykafka.TopicPartition, len(states))
	for i, ps := range states {
		tps[i] = ps.tp
	}
	end, err := c.d.ListOffsets(ctx, tps, polykafka.OffsetLatest)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	c.commitMu.Lock() // guards ps.committed
	for _, ps := range states {
		e, ok := end[ps.tp]
		if !ok || ps.gone.Load() {
			continue
		}
		l := PartitionLag{TopicPartition: ps.tp, End: e, Processed: ps.processed.Load(), Committed: ps.committed}
		l.Lag = max(e-l.Processed, 0)
		l.CommittedLag = max(e-l.Committed, 0)
		out = append(out, l)
	}
	c.commitMu.Unlock()
	slices.SortFunc(out, func(a, b PartitionLag) int { return compareTP(a.TopicPartition, b.TopicPartition) })
	return out, nil
}
