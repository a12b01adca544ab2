package polysarama

// The reader is a sarama.Client and a sarama.Consumer without a group: each
// partition Assign adds gets the group consumer's pump (one partition
// consumer started exactly at the decided offset, restarted by Assign and
// Pause/Resume), and Fetch, ListOffsets, PartitionCounts, Pause, Resume and
// ErrorCode are the group consumer's own code.

import (
	"context"
	"errors"
	"sync"

	"github.com/IBM/sarama"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// reader is a consumer without a ConsumerGroup: its parts are the
// partitions Assign added, each owned until Close, each with a pump of its
// own.
type reader struct {
	*consumer
	done  chan struct{} // closed by Close: every pump stops
	pumps sync.WaitGroup
}

var (
	_ driver.PartitionReader = (*Backend)(nil)
	_ driver.Reader          = (*reader)(nil)
	_ driver.Pauser          = (*reader)(nil)
)

// OpenReader implements driver.PartitionReader with a sarama client and a
// sarama.Consumer on it, configured like a group consumer's
// (Metadata.Full false unless set, Consumer.Return.Errors true,
// Consumer.IsolationLevel from the options) but with no group: no
// partition is fetched until Assign.
func (b *Backend) OpenReader(ctx context.Context, cfg driver.ReaderConfig) (driver.Reader, error) {
	const op = "sarama: OpenReader"
	sc, err := b.config()
	if err != nil {
		return nil, err
	}
	if def := sarama.NewConfig(); sc.Metadata.Full == def.Metadata.Full {
		sc.Metadata.Full = false
	}
	sc.Consumer.Return.Errors = true
	sc.Consumer.IsolationLevel = sarama.ReadUncommitted
	if cfg.ReadCommitted {
		sc.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	c := &consumer{
		cluster: cluster{iso: isolation(cfg.ReadCommitted)},
		cfg:     driver.ConsumerConfig{ReadCommitted: cfg.ReadCommitted, Logger: cfg.Logger},
		log:     cfg.Logger,
		retries: sc.Metadata.Retry.Max,
		avail:   make(chan struct{}, 1),
		parts:   make(map[polykafka.TopicPartition]*partState),
		paused:  make(map[polykafka.TopicPartition]bool),

		closingPC: make(map[polykafka.TopicPartition]chan struct{}),
	}
	c.gone = c.isClosed
	c.unlog = registerLogger(cfg.Logger)
	cl, err := b.newClient(ctx, op, sc)
	if err != nil {
		c.unlog()
		return nil, err
	}
	pcons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		_ = cl.Close()
		c.unlog()
		return nil, polykafka.NewError(errorCode(err), op, "", err)
	}
	c.client, c.fetchClient, c.pcons = cl, cl, pcons // no group: one client
	if err := warmUp(ctx, &c.calls, cl); err != nil {
		_ = pcons.Close()
		_ = cl.Close()
		c.unlog()
		return nil, deadlineError(op, err)
	}
	return &reader{consumer: c, done: make(chan struct{})}, nil
}

// Assign implements driver.Reader: a new partition gets a pump whose
// partition consumer starts at its offset; a partition already assigned
// has its queue dropped and its partition consumer restarted there (which
// also fetches again a partition that was out of range). Starting is
// asynchronous: an error (out of range, for one) reaches Fetch.
func (r *reader) Assign(_ context.Context, offsets map[polykafka.TopicPartition]int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	for tp, off := range offsets {
		if ps := r.parts[tp]; ps != nil {
			ps.next = off
			r.restartLocked(ps)
			continue
		}
		ps := &partState{
			tp:     tp,
			owned:  true,
			paused: r.paused[tp],
			next:   off,
			space:  make(chan struct{}, 1),
			ctl:    make(chan struct{}, 1),
		}
		r.parts[tp] = ps
		r.pumps.Go(func() { r.pump(r.done, ps) })
	}
	return nil
}

// Close implements driver.Reader: the pumps stop (closing their partition
// consumers), then the sarama.Consumer and the client close. It waits for
// the pumps and the calls in flight until ctx ends.
func (r *reader) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for _, ps := range r.parts {
		ps.owned = false
		ps.msgs = nil
	}
	r.ready = r.ready[:0]
	r.mu.Unlock()
	r.signal() // a Fetch waiting returns errClosed
	close(r.done)

	var err error
	stopped := make(chan struct{})
	go func() {
		r.pumps.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := r.pcons.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := r.client.Close(); cerr != nil && err == nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = cerr
	}
	r.calls.wait(ctx)
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	r.unlog()
	return err
}

// As implements driver.Reader: *sarama.Client and *sarama.Consumer.
func (r *reader) As(target any) bool {
	switch p := target.(type) {
	case *sarama.Client:
		if p != nil {
			*p = r.client
			return true
		}
	case *sarama.Consumer:
		if p != nil {
			*p = r.pcons
			return true
		}
	}
	return false
}
