package offsetstore

import (
	"context"
	"sync"

	"github.com/polykafka/polykafka"
)

// Memory is a Store kept in the memory of one process. Use it for tests and
// for groups whose members all live in one process; positions are lost when
// the process exits. The zero value is not usable; call [NewMemory].
type Memory struct {
	mu sync.Mutex
	m  map[string]map[polykafka.TopicPartition]Position // group -> tp -> position
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{m: make(map[string]map[polykafka.TopicPartition]Position)}
}

// Load implements Store.
func (s *Memory) Load(ctx context.Context, group, topic string) (map[int32]Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int32]Position)
	for tp, p := range s.m[group] {
		if tp.Topic == topic {
			out[tp.Partition] = p
		}
	}
	return out, nil
}

// Save implements Store. It is all or nothing.
func (s *Memory) Save(ctx context.Context, group string, positions map[polykafka.TopicPartition]Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate("offsetstore: Memory.Save", group, positions); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.m[group]
	if g == nil {
		g = make(map[polykafka.TopicPartition]Position)
		s.m[group] = g
	}
	for tp, p := range positions {
		g[tp] = p
	}
	return nil
}

// validate checks the arguments of a Save; every store shares it so that
// they reject the same input with the same message.
func validate(op, group string, positions map[polykafka.TopicPartition]Position) error {
	if group == "" {
		return polykafka.NewError(polykafka.InvalidArgument, op, "group is empty", nil)
	}
	for tp, p := range positions {
		switch {
		case tp.Topic == "":
			return polykafka.NewError(polykafka.InvalidArgument, op, "position with an empty topic", nil)
		case tp.Partition < 0:
			return polykafka.NewError(polykafka.InvalidArgument, op, "negative partition in "+tp.String(), nil)
		case p.Offset < 0:
			return polykafka.NewError(polykafka.InvalidArgument, op, "negative offset for "+tp.String(), nil)
		case p.Baseline < 0:
			return polykafka.NewError(polykafka.InvalidArgument, op, "negative baseline for "+tp.String(), nil)
		}
	}
	return nil
}
