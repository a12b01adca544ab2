package franz

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// reader is a kgo client without a group (a direct consumer): partitions
// are added with AddConsumePartitions at the portable layer's offsets and
// restarted with SetOffsets. Fetching, listing offsets, counting
// partitions, pausing and errors are the group consumer's own code.
type reader struct {
	*consumer
	amu      sync.Mutex
	assigned map[polykafka.TopicPartition]bool
}

var (
	_ driver.PartitionReader = (*Backend)(nil)
	_ driver.Reader          = (*reader)(nil)
	_ driver.Pauser          = (*reader)(nil)
)

// OpenReader implements driver.PartitionReader. The client gets the
// connection's options and the native options that are not group options
// (consumer options apply: fetch sizes, for example).
func (b *Backend) OpenReader(_ context.Context, cfg driver.ReaderConfig) (driver.Reader, error) {
	const op = "franz: OpenReader"
	base, err := b.clientOpts(false)
	if err != nil {
		return nil, err
	}
	isolation := kgo.ReadUncommitted()
	if cfg.ReadCommitted {
		isolation = kgo.ReadCommitted()
	}
	opts := []kgo.Opt{kgo.WithLogger(slogLogger{cfg.Logger})}
	for _, o := range base {
		if _, isGroup := o.(kgo.GroupOpt); !isGroup {
			opts = append(opts, o)
		}
	}
	opts = append(opts,
		kgo.FetchIsolationLevel(isolation),
		// As for group members: an out-of-range fetch is reported and the
		// partition stops until Assign moves it (SetOffsets).
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	c := &consumer{
		cluster: newCluster(cl),
		pending: make(map[polykafka.TopicPartition]int64),
		stopped: make(map[polykafka.TopicPartition]bool),
	}
	return &reader{consumer: c, assigned: make(map[polykafka.TopicPartition]bool)}, nil
}

// Assign implements driver.Reader: new partitions are added at their
// offsets, partitions already consumed are moved there.
func (r *reader) Assign(_ context.Context, offsets map[polykafka.TopicPartition]int64) error {
	add := make(map[string]map[int32]kgo.Offset)
	set := make(map[string]map[int32]kgo.EpochOffset)
	r.amu.Lock()
	defer r.amu.Unlock()
	r.mu.Lock()
	for tp, off := range offsets {
		delete(r.stopped, tp)
		if r.assigned[tp] {
			if set[tp.Topic] == nil {
				set[tp.Topic] = make(map[int32]kgo.EpochOffset)
			}
			set[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
			continue
		}
		if add[tp.Topic] == nil {
			add[tp.Topic] = make(map[int32]kgo.Offset)
		}
		add[tp.Topic][tp.Partition] = kgo.NewOffset().At(off).WithEpoch(-1)
		r.assigned[tp] = true
	}
	r.mu.Unlock()
	if len(add) > 0 {
		r.cl.AddConsumePartitions(add)
	}
	if len(set) > 0 {
		r.cl.SetOffsets(set)
	}
	return nil
}

// Close implements driver.Reader.
func (r *reader) Close(context.Context) error {
	r.cl.Close()
	return nil
}
