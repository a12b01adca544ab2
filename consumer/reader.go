package consumer

// Consumption without a group: NewReader runs the same Consumer (Run,
// RunBatch, Poll, commits, discovery, the start-offset rule) over a
// driver.Reader, through readerShim, which plays the group's part: it
// assigns the partitions itself and calls the handler's Assigned before it
// fetches any of them.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// NewReader creates a consumer that reads topics without a consumer group:
// every partition of topics (partitions added later included), or only
// Options.Partitions. Positions are kept in Options.Store (required: there
// are no group commits) under name, which plays the part of the group id
// there, so two readers with the same name and store share positions. Each
// partition starts by the same rule as in a group (see package discovery):
// at its stored position, by Options.Initial when name never read the
// topic, at its earliest offset when it was added since.
//
// Run, RunBatch, Poll, Mark, Commit, Pause, Resume, AwaitAssignment and
// Close work as for a group member; rebalance hooks see the assignment at
// start and as partitions are added, and a revoke of everything at Close.
// It returns an error with code Unimplemented on a backend that cannot
// read without a group (see the README's capability matrix).
func NewReader(ctx context.Context, b driver.Backend, name string, topics []string, opts *Options) (*Consumer, error) {
	const op = "consumer: NewReader"
	invalid := func(msg string) error { return polykafka.NewError(polykafka.InvalidArgument, op, msg, nil) }
	switch {
	case b == nil:
		return nil, invalid("backend is nil")
	case name == "":
		return nil, invalid("name is empty (it names the reader's positions in the store)")
	case opts == nil || opts.Store == nil:
		return nil, invalid("Options.Store is nil: a reader without a group keeps its positions in a Store (offsetstore.NewMemory, offsetstore/redis, or your own)")
	case opts.GroupProtocol != GroupProtocolClassic:
		return nil, invalid("Options.GroupProtocol is for New: a reader has no consumer group")
	}
	pr, ok := b.(driver.PartitionReader)
	if !ok {
		return nil, polykafka.NewError(polykafka.Unimplemented, op, "backend "+b.Name()+" cannot read without a consumer group", nil)
	}
	for i, tp := range opts.Partitions {
		switch {
		case !slices.Contains(topics, tp.Topic):
			return nil, invalid(fmt.Sprintf("Options.Partitions[%d]: topic %q is not in topics", i, tp.Topic))
		case tp.Partition < 0:
			return nil, invalid(fmt.Sprintf("Options.Partitions[%d]: partition %d is negative", i, tp.Partition))
		case slices.Contains(opts.Partitions[:i], tp):
			return nil, invalid(fmt.Sprintf("Options.Partitions[%d]: %s is listed twice", i, tp))
		}
	}
	return open(ctx, op, name, topics, opts, func(ctx context.Context, c *Consumer, cfg driver.ConsumerConfig) (driver.Consumer, error) {
		r, err := pr.OpenReader(ctx, driver.ReaderConfig{ReadCommitted: cfg.ReadCommitted, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		return newReaderShim(r, cfg, opts.Partitions), nil
	})
}

// readerShim is a driver.Consumer over a driver.Reader: it assigns the
// partitions (all of the topics, or the chosen ones) and calls the handler
// around them as a group driver would, one call at a time.
type readerShim struct {
	r      driver.Reader
	h      driver.GroupHandler
	topics []string
	chosen []polykafka.TopicPartition // nil: every partition of topics

	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	callMu   sync.Mutex // one handler call at a time
	mu       sync.Mutex
	assigned map[polykafka.TopicPartition]bool
	failed   map[polykafka.TopicPartition]bool // Assigned failed: idle until Rejoin(nil)
	closed   bool
}

var (
	_ driver.Consumer = (*readerShim)(nil)
	_ driver.Pauser   = (*readerShim)(nil)
	_ driver.Seeker   = (*readerShim)(nil)
)

func newReaderShim(r driver.Reader, cfg driver.ConsumerConfig, chosen []polykafka.TopicPartition) *readerShim {
	s := &readerShim{
		r: r, h: cfg.Handler, topics: cfg.Topics, chosen: slices.Clone(chosen),
		assigned: make(map[polykafka.TopicPartition]bool),
		failed:   make(map[polykafka.TopicPartition]bool),
	}
	s.bg, s.cancel = context.WithCancel(context.Background())
	return s
}

// start assigns the first partitions; called by open once the consumer is
// ready (Assigned waits for it).
func (s *readerShim) start(counts map[string]int32) { s.assignAsync(s.targets(counts)) }

// targets returns the partitions to read for counts that are not assigned
// or failed yet.
func (s *readerShim) targets(counts map[string]int32) []polykafka.TopicPartition {
	var all []polykafka.TopicPartition
	if s.chosen != nil {
		for _, tp := range s.chosen {
			if tp.Partition < counts[tp.Topic] {
				all = append(all, tp)
			}
		}
	} else {
		for _, t := range s.topics {
			for p := int32(0); p < counts[t]; p++ {
				all = append(all, polykafka.TopicPartition{Topic: t, Partition: p})
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []polykafka.TopicPartition
	for _, tp := range all {
		if !s.assigned[tp] && !s.failed[tp] {
			out = append(out, tp)
		}
	}
	return out
}

// assignAsync decides tps through the handler and starts fetching them, on
// a goroutine of its own (Assigned may take seconds; it is cut short by
// Close).
func (s *readerShim) assignAsync(tps []polykafka.TopicPartition) {
	if len(tps) == 0 {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.callMu.Lock()
		defer s.callMu.Unlock()
		if s.bg.Err() != nil {
			return
		}
		offs, err := s.h.Assigned(s.bg, tps)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			for _, tp := range tps {
				s.failed[tp] = true
			}
			return
		}
		start := make(map[polykafka.TopicPartition]int64, len(offs))
		for tp, o := range offs {
			start[tp] = o.Offset
		}
		if err := s.r.Assign(s.bg, start); err != nil {
			// Not fetched: the handler's view must not keep them.
			for _, tp := range tps {
				s.failed[tp] = true
			}
			s.mu.Unlock()
			s.h.Lost(s.bg, tps)
			s.mu.Lock()
			return
		}
		for _, tp := range tps {
			s.assigned[tp] = true
			delete(s.failed, tp)
		}
	}()
}

// Rejoin implements driver.Consumer: new partitions (counts) or the
// partitions whose start decision failed (nil counts) are assigned now.
func (s *readerShim) Rejoin(_ context.Context, counts map[string]int32) error {
	if counts == nil {
		s.mu.Lock()
		retry := slices.Collect(maps.Keys(s.failed))
		clear(s.failed)
		s.mu.Unlock()
		s.assignAsync(retry)
		return nil
	}
	s.assignAsync(s.targets(counts))
	return nil
}

// Fetch implements driver.Consumer.
func (s *readerShim) Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error) {
	return s.r.Fetch(ctx, max, buf)
}

var errNoGroup = errors.New("a reader has no consumer group: its positions live in Options.Store")

// Commit implements driver.Consumer; a reader has no group to commit to
// (NewReader requires a Store, so the portable layer never calls it).
func (s *readerShim) Commit(context.Context, map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	return polykafka.NewError(polykafka.Unimplemented, "consumer: reader commit", "", errNoGroup)
}

// Committed implements driver.Consumer, as Commit.
func (s *readerShim) Committed(context.Context, []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	return nil, polykafka.NewError(polykafka.Unimplemented, "consumer: reader committed", "", errNoGroup)
}

// ListOffsets implements driver.Consumer.
func (s *readerShim) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	return s.r.ListOffsets(ctx, tps, at)
}

// PartitionCounts implements driver.Consumer.
func (s *readerShim) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	return s.r.PartitionCounts(ctx, topics)
}

// Seek implements driver.Seeker: Assign restarts a partition.
func (s *readerShim) Seek(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error {
	return s.r.Assign(ctx, offsets)
}

// Pause implements driver.Pauser if the reader does.
func (s *readerShim) Pause(ctx context.Context, tps []polykafka.TopicPartition) error {
	if p, ok := s.r.(driver.Pauser); ok {
		return p.Pause(ctx, tps)
	}
	return polykafka.NewError(polykafka.Unimplemented, "consumer: Pause", "backend's reader cannot pause partitions", nil)
}

// Resume implements driver.Pauser if the reader does.
func (s *readerShim) Resume(ctx context.Context, tps []polykafka.TopicPartition) error {
	if p, ok := s.r.(driver.Pauser); ok {
		return p.Resume(ctx, tps)
	}
	return polykafka.NewError(polykafka.Unimplemented, "consumer: Resume", "backend's reader cannot pause partitions", nil)
}

// Close implements driver.Consumer: the assigned partitions are revoked
// (the handler stores their processed positions), then the reader closes.
func (s *readerShim) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.callMu.Lock()
	s.mu.Lock()
	tps := slices.Collect(maps.Keys(s.assigned))
	clear(s.assigned)
	s.mu.Unlock()
	if len(tps) > 0 {
		s.h.Revoked(ctx, tps)
	}
	s.callMu.Unlock()
	return s.r.Close(ctx)
}

// As implements driver.Consumer.
func (s *readerShim) As(target any) bool { return s.r.As(target) }

// ErrorCode implements driver.Consumer.
func (s *readerShim) ErrorCode(err error) polykafka.ErrorCode { return s.r.ErrorCode(err) }
