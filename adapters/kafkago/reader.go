package kafkago

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// reader reads chosen partitions without a group: the group consumer's
// fetching part (fetch.go) with no kafka.ConsumerGroup. Assign starts a
// partition's fetch loop at the portable layer's offset, or restarts it
// there as Seek does; Fetch, Pause, Resume, ListOffsets, PartitionCounts
// and ErrorCode are the group consumer's own.
type reader struct {
	*consumer
}

var (
	_ driver.PartitionReader = (*Backend)(nil)
	_ driver.Reader          = (*reader)(nil)
	_ driver.Pauser          = (*reader)(nil)
)

// OpenReader implements driver.PartitionReader. The reader uses the
// backend's dialer and transport, Options.ReadBatch for its fetches and
// Options.Timeout for its requests; Options.ConsumerGroup does not apply.
// It opens no connection until it is used.
func (b *Backend) OpenReader(ctx context.Context, cfg driver.ReaderConfig) (driver.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := b.newConsumer(cfg.Logger, cfg.ReadCommitted)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return &reader{consumer: c}, nil
}

// Assign implements driver.Reader. A partition not assigned yet gets a
// fetch loop starting at its offset (unless it is paused); an assigned one
// has its loop restarted there, its records fetched from the earlier
// position dropped, and an out-of-range halt lifted.
func (r *reader) Assign(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	for tp, off := range offsets {
		st := r.parts[tp]
		if st == nil {
			st = &partState{}
			r.parts[tp] = st
		}
		stopFetch(st)
		st.next, st.halted = off, false
		if !r.paused[tp] {
			r.startFetch(tp, st)
		}
	}
	return nil
}

// Close implements driver.Reader: the fetch loops stop and the reader's
// connections close. It returns by ctx's deadline; the loops, whose
// requests end with their context, finish in the background then.
func (r *reader) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for tp, st := range r.parts {
		stopFetch(st)
		delete(r.parts, tp)
	}
	r.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.fetchWG.Wait()
		r.fetchTr.CloseIdleConnections()
		if r.b.opts.Transport == nil {
			r.tr.CloseIdleConnections()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// As implements driver.Reader: *kafka.Client (on the backend's transport;
// a reader has no kafka.ConsumerGroup and no kafka.Generation).
func (r *reader) As(target any) bool {
	if p, ok := target.(**kafka.Client); ok {
		*p = r.client
		return true
	}
	return false
}
