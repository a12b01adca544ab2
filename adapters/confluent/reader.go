//go:build cgo

package confluent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// readerGroupPrefix starts the group.id of a reader's kafka.Consumer:
// librdkafka's consumer cannot be created without one. The rest is random,
// so that no two readers share it. A reader never subscribes, never
// commits (enable.auto.commit=false and no Commit call) and sends no
// JoinGroup, so the group never has members or offsets on the cluster.
const readerGroupPrefix = "polykafka-reader-"

// reader is a kafka.Consumer that never subscribes: partitions are given
// to it with IncrementalAssign at the portable layer's offsets. Fetching
// (Poll in slices, records of assigned partitions only, the out-of-range
// search), listing offsets, counting partitions, pausing and errors are
// the group consumer's own code; c.active holds the assigned partitions
// and c.starts their start offsets.
type reader struct {
	*consumer
}

var (
	_ driver.PartitionReader = (*Backend)(nil)
	_ driver.Reader          = (*reader)(nil)
	_ driver.Pauser          = (*reader)(nil)
)

// readerGroupID returns a new reader's group.id: readerGroupPrefix and 16
// random hex digits.
func readerGroupID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return readerGroupPrefix + hex.EncodeToString(b[:])
}

// OpenReader implements driver.PartitionReader. The kafka.Consumer gets
// the consumer configuration (see the package doc, "# Configuration") with
// a group.id of its own that it never uses for a group (readerGroupPrefix
// and random digits); it fetches nothing until Assign.
func (b *Backend) OpenReader(ctx context.Context, cfg driver.ReaderConfig) (driver.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := b.consumerConfig(driver.ConsumerConfig{Group: readerGroupID(), ReadCommitted: cfg.ReadCommitted})
	if err != nil {
		return nil, err
	}
	kc, err := kafka.NewConsumer(&m)
	if err != nil {
		return nil, opErr(polykafka.InvalidArgument, "OpenReader", err)
	}
	c := &consumer{
		cluster:  cluster{md: kc},
		kc:       kc,
		log:      cfg.Logger,
		active:   make(map[polykafka.TopicPartition]bool),
		starts:   make(map[polykafka.TopicPartition]int64),
		paused:   make(map[polykafka.TopicPartition]bool),
		stopIdle: make(chan struct{}),
		idleDone: make(chan struct{}),
	}
	c.logsDone = startLogs(m, cfg.Logger, kc.Logs())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.adm, err = kafka.NewAdminClientFromConsumer(kc); err != nil {
		c.cancel()
		_ = kc.Close()
		<-c.logsDone
		return nil, err
	}
	// No idle poller: without a subscription there are no rebalance
	// callbacks to run between fetches, and librdkafka queues what it
	// prefetches (within its queued.max.messages.kbytes) for the next
	// Fetch.
	close(c.idleDone)
	return &reader{consumer: c}, nil
}

// Assign implements driver.Reader with IncrementalAssign: partitions not
// assigned yet are added at their offsets; assigned ones are first removed
// with IncrementalUnassign, which makes librdkafka stop their fetch and
// discard what it fetched from the earlier position, then added at their
// new offset (a partition whose fetch stopped out of range restarts the
// same way). A restarted partition paused through Pause is paused again.
// Assign waits for a Poll in progress (at most pollSlice), so that no
// record polled from an earlier position is handed out after it returns.
func (r *reader) Assign(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closing.Load() {
		return errClosed
	}
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	if r.closing.Load() {
		return errClosed
	}
	var restart, add []kafka.TopicPartition
	var repause []polykafka.TopicPartition
	r.pauseMu.Lock()
	for tp, off := range offsets {
		if r.active[tp] {
			restart = append(restart, nativeTP(tp, kafka.OffsetInvalid))
			if r.paused[tp] {
				repause = append(repause, tp)
			}
		}
		add = append(add, nativeTP(tp, kafka.Offset(off)))
	}
	r.pauseMu.Unlock()
	err := r.call(ctx, func() error {
		if len(restart) > 0 {
			if err := r.kc.IncrementalUnassign(restart); err != nil {
				return describe("incremental unassign", err)
			}
		}
		if err := r.kc.IncrementalAssign(add); err != nil {
			return describe("incremental assign", err)
		}
		if len(repause) > 0 {
			return r.kc.Pause(nativeTPs(repause))
		}
		return nil
	})
	// Whatever happened, no record fetched before this call is handed out
	// for these partitions any more.
	n := 0
	for _, rec := range r.buffered {
		if _, moved := offsets[rec.TopicPartition()]; !moved {
			r.buffered[n] = rec
			n++
		}
	}
	clear(r.buffered[n:])
	r.buffered = r.buffered[:n]
	if err != nil {
		return err
	}
	for tp, off := range offsets {
		r.active[tp] = true
		r.starts[tp] = off
	}
	return nil
}

// Close implements driver.Reader: it waits for the Poll and the calls in
// flight, then closes the client (no group to leave, nothing to commit).
func (r *reader) Close(context.Context) error {
	if !r.closing.CompareAndSwap(false, true) {
		return errClosed
	}
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	r.life.Lock()
	r.closed = true
	r.life.Unlock()
	var errs []error
	r.adm.Close()
	if err := r.kc.Close(); err != nil {
		errs = append(errs, err)
	}
	r.cancel()
	<-r.logsDone
	if r.pending != nil {
		errs = append(errs, r.pending)
	}
	return errors.Join(errs...)
}
