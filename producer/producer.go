// Package producer is the portable Kafka producer of polykafka.
//
// A [Producer] sends records on any backend with the same defaults: acks
// from all in-sync replicas, idempotence, and the Java-compatible murmur2
// key partitioner, so a key lands on the same partition whichever backend
// (or Java client) writes it.
//
//	p, err := producer.New(ctx, franz.New(kgo.SeedBrokers(addr)), nil)
//	if err != nil { ... }
//	defer p.Close()
//	r := &polykafka.Record{Topic: "orders", Key: []byte("k"), Value: []byte("v")}
//	if err := p.Send(ctx, r); err != nil { ... }
//	fmt.Println(r.Partition, r.Offset)
//
// # Errors
//
// Errors are *polykafka.Error values: use polykafka.Code, errors.Is with
// polykafka.ErrClosed and friends, or errors.As to reach the backend's
// native error. Context errors are returned as they are.
package producer

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// Producer sends records. Its methods are safe for concurrent use.
type Producer struct {
	d driver.Producer
	s settings

	// handing counts SendAsync calls between their closed check and the
	// driver's Produce returning; Close waits for it to drain after the
	// driver is closed (which unblocks a Produce waiting for buffer space),
	// so no record reaches the driver unnoticed after Close. No lock is
	// held across Produce: it may block, and callbacks may run inside it.
	handing  atomic.Int64
	closed   atomic.Bool
	closeErr error
	closeMu  sync.Mutex
	once     bool
}

// New creates a producer on backend b.
func New(ctx context.Context, b driver.Backend, opts *Options) (*Producer, error) {
	const op = "producer: New"
	if b == nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "backend is nil", nil)
	}
	s, err := opts.settings()
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, err.Error(), nil)
	}
	acks := map[Acks]int{AcksAll: -1, AcksLeader: 1, AcksNone: 0}[s.Acks]
	compression := string(s.Compression)
	if compression == "" {
		compression = "none"
	}
	d, err := b.OpenProducer(ctx, driver.ProducerConfig{
		Acks:             acks,
		Idempotent:       s.Acks == AcksAll && !s.DisableIdempotence,
		Compression:      compression,
		ManualPartitions: s.RecordPartition,
		Linger:           s.Linger,
		BatchBytes:       s.BatchBytes,
		Logger:           s.Logger,
	})
	if err != nil {
		return nil, polykafka.NewError(polykafka.Code(err), op, "", err)
	}
	return &Producer{d: d, s: s}, nil
}

func (p *Producer) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *polykafka.Error
	if errors.As(err, &pe) {
		return err
	}
	return polykafka.NewError(p.d.ErrorCode(err), op, "", err)
}

// check validates r and normalises its Partition.
func (p *Producer) check(op string, r *polykafka.Record) error {
	if r == nil {
		return polykafka.NewError(polykafka.InvalidArgument, op, "record is nil", nil)
	}
	if r.Topic == "" {
		return polykafka.NewError(polykafka.InvalidArgument, op, "record Topic is empty", nil)
	}
	if !p.s.RecordPartition {
		r.Partition = polykafka.AnyPartition
	} else if r.Partition < polykafka.AnyPartition {
		return polykafka.NewError(polykafka.InvalidArgument, op,
			"record Partition "+strconv.Itoa(int(r.Partition))+" is negative (use polykafka.AnyPartition)", nil)
	}
	return nil
}

// SendAsync hands r to the backend and returns without waiting for the
// broker. cb is called exactly once, on another goroutine or (for invalid
// input, a closed producer or a done ctx) before SendAsync returns, with
// nil or the error; on success r's Partition, Offset and Timestamp are set.
// cb must not block for long: it runs on the backend's delivery goroutine.
// A nil cb is allowed: errors are then logged. r must not be modified until
// cb is called.
//
// SendAsync blocks while the backend's buffer is full, until ctx is done.
func (p *Producer) SendAsync(ctx context.Context, r *polykafka.Record, cb func(*polykafka.Record, error)) {
	const op = "producer: SendAsync"
	if cb == nil {
		cb = p.logFailure
	}
	if err := p.check(op, r); err != nil {
		cb(r, err)
		return
	}
	p.handing.Add(1) // before the check: Close sets closed, then waits for zero
	if p.closed.Load() {
		p.handing.Add(-1)
		cb(r, polykafka.NewError(polykafka.Closed, op, "", nil))
		return
	}
	p.d.Produce(ctx, r, cb)
	p.handing.Add(-1)
}

func (p *Producer) logFailure(r *polykafka.Record, err error) {
	if err != nil {
		p.s.Logger.Error("polykafka: record not sent", "topic", r.Topic, "err", err)
	}
}

// Send sends r and waits for the broker's acknowledgement. On success it
// sets r's Partition, Offset and Timestamp and returns nil.
func (p *Producer) Send(ctx context.Context, r *polykafka.Record) error {
	if r == nil {
		return p.check("producer: Send", r)
	}
	// The backend works on a copy, so that if ctx ends first r is the
	// caller's again at once: the copy may still be sent, and its result
	// is discarded. The byte slices (Key, Value, header values) are shared:
	// do not modify them until the record is sent.
	cp := *r
	ch := make(chan error, 1)
	p.SendAsync(ctx, &cp, func(_ *polykafka.Record, err error) { ch <- err })
	select {
	case err := <-ch:
		if err == nil {
			r.Partition, r.Offset, r.Timestamp = cp.Partition, cp.Offset, cp.Timestamp
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until the callback of every record sent before the call has
// run, or ctx is done.
func (p *Producer) Flush(ctx context.Context) error {
	if p.closed.Load() {
		return polykafka.NewError(polykafka.Closed, "producer: Flush", "", nil)
	}
	return p.wrap("producer: Flush", p.d.Flush(ctx))
}

// As exposes the backend's native client; see the adapter's package doc
// ("# As"). It returns false for nil or an unsupported target.
func (p *Producer) As(target any) bool {
	if target == nil {
		return false
	}
	return p.d.As(target)
}

// Close stops accepting records (later sends fail with an error with code
// Closed), waits up to Options.CloseTimeout for buffered records to be
// delivered, fails the rest (their callbacks get an error), and releases
// the client. Every callback has run when Close returns; failing what could
// not be delivered may take a few seconds beyond CloseTimeout. It is
// idempotent: later calls return the first call's result.
func (p *Producer) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.once {
		return p.closeErr
	}
	p.once = true
	p.closed.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), p.s.CloseTimeout)
	defer cancel()
	var errs []error
	if err := p.d.Flush(ctx); err != nil {
		errs = append(errs, p.wrap("producer: Close", err))
	}
	if err := p.d.Close(ctx); err != nil {
		errs = append(errs, p.wrap("producer: Close", err))
	}
	// A SendAsync that passed its closed check before Close began is now
	// failed by the closed driver (its callback runs inside Produce).
	grace := time.Now().Add(time.Second)
	for p.handing.Load() > 0 {
		if time.Now().After(grace) {
			errs = append(errs, polykafka.NewError(polykafka.Unavailable, "producer: Close",
				"a SendAsync is still inside the backend (is a callback calling Close?)", nil))
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.closeErr = errors.Join(errs...)
	return p.closeErr
}
