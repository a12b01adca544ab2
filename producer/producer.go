// Package producer is the portable Kafka producer of polykafka.
//
// A [Producer] sends records on any backend with the same defaults: acks
// from all in-sync replicas, idempotence where the backend has it, and the
// Java-compatible murmur2 key partitioner, so a key lands on the same
// partition whichever backend (or Java client) writes it.
//
//	p, err := producer.New(ctx, franz.New(polykafka.Connection{Brokers: brokers}), nil)
//	if err != nil { ... }
//	defer p.Close()
//	r := &polykafka.Record{Topic: "orders", Key: []byte("k"), Value: []byte("v")}
//	if err := p.Send(ctx, r); err != nil { ... }
//	fmt.Println(r.Partition, r.Offset)
//
// # Topic growth and key placement
//
// A keyed record goes to murmur2(key) modulo the topic's partition count,
// so when a topic grows, most keys move to other partitions: records of
// one key written before and after the growth are in different partitions,
// and their relative order is lost to consumers. The producer polls the
// partition counts of the topics it writes to every DiscoveryInterval (5s
// by default) and makes its client refresh its metadata as soon as a topic
// grew, so that every backend (and every producer using the same interval)
// moves keys to the new placement within about one interval, instead of at
// the client's own metadata refresh (minutes). Pause keyed producers while
// partitions are added if per-key order matters across the change.
//
// # Errors
//
// Errors are *polykafka.Error values: use polykafka.Code, errors.Is with
// polykafka.ErrClosed and friends, or errors.As to reach the backend's
// native error. context.Canceled is returned as it is; a deadline that
// expires before the broker acknowledged is an Unavailable error that still
// matches errors.Is(err, context.DeadlineExceeded).
package producer

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/clock"
	"github.com/polykafka/polykafka/internal/errs"
)

// Producer sends records. Its methods are safe for concurrent use.
type Producer struct {
	d       driver.Producer
	s       settings
	backend string

	// sent counts records from SendAsync's closed check on, delivered
	// those whose delivery finished (the callback has returned): the
	// difference is in flight. Flush and Close wait for it to reach zero:
	// waiters registers them, and the delivery that brings it to zero
	// closes idle. Two counters on their own cache lines, so that the
	// sending goroutines and the client's delivery goroutine do not write
	// the same line for every record.
	_         [64]byte
	sent      atomic.Int64
	_         [56]byte
	delivered atomic.Int64
	_         [56]byte
	waiters   atomic.Int32
	idleMu    sync.Mutex
	idle      chan struct{}
	// abandoned counts records in flight whose Send already returned
	// because its context ended: Close does not wait for them (the
	// backend's Close fails them), so that a record whose Send failed does
	// not hold Close.
	abandoned atomic.Int64
	// lookedUp holds the records whose NotFound delivery is being looked
	// up (see lookUp), so that each is looked up once.
	lookedUp sync.Map
	// retried holds the first deadline of each record produced again
	// after a driver.EarlyFailure (see again); retrying counts them, so
	// that a delivery looks the map up only while there are some.
	retried  sync.Map
	retrying atomic.Int64

	closed   atomic.Bool
	gaveUp   atomic.Bool // Close stopped waiting for deliveries
	closeErr error
	closeMu  sync.Mutex
	once     bool

	watcher  *discovery.Watcher
	topics   sync.Map // topic -> *topicEntry: the topics written to
	last     atomic.Pointer[topicEntry]
	bg       context.Context
	bgCancel context.CancelFunc
	bgDone   chan struct{}
	bgWG     sync.WaitGroup
	// lookCtx bounds the lookups of records that failed with NotFound
	// (lookUp): they outlive the start of Close, which waits for them as
	// for any record in flight, and end when Close has flushed or gave up.
	lookCtx    context.Context
	lookCancel context.CancelFunc

	txMu sync.Mutex
	inTx bool
}

type topicEntry struct{ name string }

// New creates a producer on backend b. ctx bounds New itself (the client
// is created; no broker needs to answer).
func New(ctx context.Context, b driver.Backend, opts *Options) (*Producer, error) {
	const op = "producer: New"
	if b == nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "backend is nil", nil)
	}
	s, err := opts.settings()
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, err.Error(), nil)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	acks := map[Acks]int{AcksAll: -1, AcksLeader: 1, AcksNone: 0}[s.Acks]
	idem := s.Idempotence
	switch {
	case s.TransactionalID != "":
		idem = IdempotenceRequired
	case idem == IdempotenceAuto && s.Acks != AcksAll:
		idem = IdempotenceOff
	}
	p := &Producer{s: s, backend: b.Name(), bgDone: make(chan struct{})}
	d, err := b.OpenProducer(ctx, driver.ProducerConfig{
		Acks:             acks,
		Idempotence:      idem,
		TransactionalID:  s.TransactionalID,
		Compression:      s.Compression,
		ManualPartitions: s.RecordPartition,
		Linger:           s.Linger,
		BatchBytes:       s.BatchBytes,
		DeliveryTimeout:  s.DeliveryTimeout,
		Delivered:        p.deliver,
		Logger:           s.Logger,
	})
	if err != nil {
		return nil, errs.Wrap(op, err, polykafka.Code)
	}
	p.d = d
	clock.Acquire()
	if idem == IdempotenceAuto && !d.Idempotent() {
		s.Logger.Info("polykafka: the backend has no idempotent producer; a retried send may write a record twice",
			"backend", b.Name())
	}
	bg, cancel := context.WithCancel(context.Background())
	p.bg, p.bgCancel = bg, cancel
	p.lookCtx, p.lookCancel = context.WithCancel(context.Background())
	if s.DiscoveryInterval > 0 {
		p.watcher = discovery.NewWatcher(d, nil, s.DiscoveryInterval, s.Logger, p.onGrowth)
		go func() {
			defer close(p.bgDone)
			p.watcher.Run(bg)
		}()
	} else {
		close(p.bgDone)
	}
	return p, nil
}

// Idempotent reports whether the producer is idempotent: retries by the
// client never write a record twice. With the default options it is true
// on every backend that has an idempotent producer.
func (p *Producer) Idempotent() bool { return p.d.Idempotent() }

func (p *Producer) wrap(op string, err error) error {
	return errs.Wrap(op, err, p.classify)
}

func (p *Producer) classify(err error) polykafka.ErrorCode {
	if code := polykafka.Code(err); code != polykafka.Unknown {
		return code
	}
	return p.d.ErrorCode(err)
}

// deliver is the driver's ProducerConfig.Delivered: one function for the
// producer, so the record path allocates nothing for it.
func (p *Producer) deliver(r *polykafka.Record, err error, done func(*polykafka.Record, error)) {
	if err != nil {
		var ef *driver.EarlyFailure
		if errors.As(err, &ef) {
			if p.again(r, ef, done) {
				return
			}
			err = ef.Err
		}
	}
	if p.retrying.Load() > 0 {
		if _, ok := p.retried.LoadAndDelete(r); ok {
			p.retrying.Add(-1)
		}
	}
	if err != nil && r != nil && p.classify(err) == polykafka.NotFound {
		if _, again := p.lookedUp.LoadOrStore(r, struct{}{}); !again {
			go p.lookUp(r, err, done) // still in flight: Flush and Close wait for it
			return
		}
		p.lookedUp.Delete(r)
	}
	if err != nil {
		if p.gaveUp.Load() && p.classify(err) == polykafka.Closed {
			err = polykafka.NewError(polykafka.Unavailable, "producer: Close",
				"not delivered within CloseTimeout ("+p.s.CloseTimeout.String()+"); the record may or may not have been written", err)
		} else {
			err = p.wrap("producer: send", err)
		}
	}
	if done != nil {
		done(r, err)
	} else if err != nil {
		p.logFailure(r, err)
	}
	p.release()
}

// again is the rule for a record its backend failed before the record's
// delivery timeout passed (driver.EarlyFailure), the same on every
// backend: a retryable failure (Unavailable: no leader during an outage, a
// cut connection) is produced again after the client's backoff, until
// the deadline of the record's first Produce (Options.DeliveryTimeout,
// Kafka's delivery.timeout.ms); any other failure, one that would go past
// the deadline, and any after Close gave up, is delivered. It reports
// whether the record was taken to be produced again. A record produced
// again may land after records sent after it, and twice if the request
// that failed was written before its connection was cut (a new Produce is
// a new record to the client's idempotence).
func (p *Producer) again(r *polykafka.Record, ef *driver.EarlyFailure, done func(*polykafka.Record, error)) bool {
	if r == nil || p.gaveUp.Load() || p.classify(ef.Err) != polykafka.Unavailable {
		return false
	}
	backoff := ef.Backoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	deadline := ef.Deadline
	if first, loaded := p.retried.LoadOrStore(r, deadline); loaded {
		deadline = first.(time.Time)
	} else {
		p.retrying.Add(1)
	}
	if !time.Now().Add(backoff).Before(deadline) {
		return false // deliver forgets it
	}
	p.s.Logger.Debug("polykafka: producer: the backend failed a record before its delivery timeout; producing it again",
		"topic", r.Topic, "err", ef.Err, "backoff", backoff)
	// Still in flight: Flush and Close wait for it. After Close closed the
	// backend, the new Produce fails it as closed.
	time.AfterFunc(backoff, func() { p.d.Produce(context.Background(), r, done) })
	return true
}

// lookUp is the rule for a record that failed with NotFound, the same on
// every backend: a client's metadata may predate the topic (kafka-go's
// cache, librdkafka's propagation wait), so the producer asks the cluster
// (an uncached metadata request) before it reports NotFound. If the topic
// exists, the client's metadata is refreshed and the record produced once
// more; otherwise, or if that fails too, the record gets the error.
//
// A NotFound the cluster could not confirm (it did not answer: librdkafka
// reports an unknown topic after topic.metadata.propagation.max.ms even
// when no broker is reachable) is not NotFound: the record fails as
// Unavailable, or, if Close gave up meanwhile, with Close's verdict.
func (p *Producer) lookUp(r *polykafka.Record, cause error, done func(*polykafka.Record, error)) {
	ctx, cancel := context.WithTimeout(p.lookCtx, lookupTimeout)
	defer cancel()
	counts, err := p.d.PartitionCounts(ctx, []string{r.Topic})
	if err != nil && p.classify(err) != polykafka.NotFound {
		if p.gaveUp.Load() {
			p.finish(r, polykafka.NewError(polykafka.Unavailable, "producer: Close",
				"not delivered within CloseTimeout ("+p.s.CloseTimeout.String()+"): the record's topic could not be looked up after a NotFound", cause), done)
			return
		}
		p.finish(r, &polykafka.Error{Code: polykafka.Unavailable, Op: "producer: send",
			Msg: "the cluster did not confirm that the topic is missing (" + strings.TrimSpace(err.Error()) + ")", Err: cause}, done)
		return
	}
	if err == nil && counts[r.Topic] > 0 {
		err = p.d.Refresh(ctx, counts)
	}
	if err != nil || counts[r.Topic] == 0 {
		p.deliver(r, cause, done)
		return
	}
	p.s.Logger.Debug("polykafka: producer: topic found after NotFound; producing again", "topic", r.Topic)
	// Not bound to the lookup: Close fails it through the backend.
	p.d.Produce(context.Background(), r, done)
}

// finish ends a looked-up record with err, as it is.
func (p *Producer) finish(r *polykafka.Record, err error, done func(*polykafka.Record, error)) {
	p.lookedUp.Delete(r)
	if done != nil {
		done(r, err)
	} else {
		p.logFailure(r, err)
	}
	p.release()
}

// lookupTimeout bounds the lookup of a topic a record failed on.
const lookupTimeout = 10 * time.Second

// release ends one in-flight record and wakes Flush and Close at zero.
func (p *Producer) release() {
	n := p.delivered.Add(1)
	if p.waiters.Load() > 0 && n+p.abandoned.Load() >= p.sent.Load() {
		p.wake()
	}
}

// wake wakes the goroutines waiting in waitIdle.
func (p *Producer) wake() {
	p.idleMu.Lock()
	if p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.idleMu.Unlock()
}

// inflight returns the number of records in flight.
func (p *Producer) inflight() int64 { return p.sent.Load() - p.delivered.Load() }

// abandon notes that the Send of a record in flight returned without
// its delivery.
func (p *Producer) abandon() {
	p.abandoned.Add(1)
	if p.waiters.Load() > 0 {
		p.wake()
	}
}

// waitIdle returns when no record is in flight, or ctx's error.
func (p *Producer) waitIdle(ctx context.Context, skipAbandoned bool) error {
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for {
		p.idleMu.Lock()
		left := p.sent.Load() - p.delivered.Load()
		if skipAbandoned {
			left -= p.abandoned.Load()
		}
		if left <= 0 {
			p.idleMu.Unlock()
			return nil
		}
		if p.idle == nil {
			p.idle = make(chan struct{})
		}
		ch := p.idle
		p.idleMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
// During an outage records stay buffered and are retried until
// Options.DeliveryTimeout, when they fail with code Unavailable, which
// frees room: a cut shorter than the timeout fails nothing.
func (p *Producer) SendAsync(ctx context.Context, r *polykafka.Record, cb func(*polykafka.Record, error)) {
	p.sendAsync(ctx, "producer: SendAsync", r, cb)
}

func (p *Producer) sendAsync(ctx context.Context, op string, r *polykafka.Record, cb func(*polykafka.Record, error)) {
	if err := p.check(op, r); err != nil {
		p.fail(r, cb, err)
		return
	}
	p.sent.Add(1) // before the check: Close sets closed, then waits for zero
	if p.closed.Load() {
		p.release()
		p.fail(r, cb, polykafka.NewError(polykafka.Closed, op, "", nil))
		return
	}
	if p.watcher != nil {
		p.note(r.Topic)
	}
	if r.Timestamp.IsZero() {
		// Stamped here, the same way for every backend, from a clock that
		// costs an atomic load instead of a clock read per record.
		r.Timestamp = clock.Now()
	}
	if len(p.s.Hooks) > 0 {
		cb = p.onSend(ctx, r, cb)
	}
	p.d.Produce(ctx, r, cb)
}

func (p *Producer) fail(r *polykafka.Record, cb func(*polykafka.Record, error), err error) {
	if cb == nil {
		p.logFailure(r, err)
		return
	}
	cb(r, err)
}

// note adds topic to the topics watched for growth. The common case, the
// same topic as the last record's, is one atomic load and a string
// comparison.
func (p *Producer) note(topic string) {
	if e := p.last.Load(); e != nil && e.name == topic {
		return
	}
	if e, ok := p.topics.Load(topic); ok {
		p.last.Store(e.(*topicEntry))
		return
	}
	e, loaded := p.topics.LoadOrStore(topic, &topicEntry{name: topic})
	p.last.Store(e.(*topicEntry))
	if !loaded {
		p.watcher.Watch(topic)
		// The client loaded the topic's metadata for this first record,
		// and the watcher takes its first count as the reference: if the
		// topic grew in between, no growth would ever be reported. Read
		// the count now and refresh the client after it, once per topic.
		p.bgWG.Add(1)
		go func() {
			defer p.bgWG.Done()
			p.watcher.Poll(p.bg)
			if p.bg.Err() == nil {
				if err := p.d.Refresh(p.bg, p.watcher.Counts()); err != nil && p.bg.Err() == nil {
					p.s.Logger.Warn("polykafka: producer: metadata refresh failed", "topic", topic, "err", err)
				}
			}
		}()
	}
}

func (p *Producer) onGrowth(ctx context.Context, counts map[string]int32, grown []discovery.Growth) {
	for _, g := range grown {
		p.s.Logger.Info("polykafka: producer: partitions added; refreshing metadata so keys move at once",
			"topic", g.Topic, "from", g.From, "to", g.To)
	}
	if err := p.d.Refresh(ctx, counts); err != nil && ctx.Err() == nil {
		p.s.Logger.Warn("polykafka: producer: metadata refresh after growth failed", "err", err)
	}
}

func (p *Producer) logFailure(r *polykafka.Record, err error) {
	if err == nil {
		return
	}
	topic := ""
	if r != nil {
		topic = r.Topic
	}
	p.s.Logger.Error("polykafka: record not sent", "topic", topic, "err", err)
}

// Send sends r and waits for the broker's acknowledgement. On success it
// sets r's Partition, Offset and Timestamp and returns nil. If ctx ends
// first, Send returns at once (the record may still be written).
func (p *Producer) Send(ctx context.Context, r *polykafka.Record) error {
	const op = "producer: Send"
	if r == nil {
		return p.check(op, r)
	}
	// The backend works on a copy, so that if ctx ends first r is the
	// caller's again at once: the copy may still be sent, and its result
	// is discarded. The byte slices (Key, Value, header values) are shared:
	// do not modify them until the record is sent.
	cp := *r
	ch := make(chan error, 1)
	var state atomic.Int32 // sendWaiting, sendDelivered or sendAbandoned
	p.sendAsync(ctx, op, &cp, func(_ *polykafka.Record, err error) {
		if !state.CompareAndSwap(sendWaiting, sendDelivered) {
			p.abandoned.Add(-1)
		}
		ch <- err
	})
	select {
	case err := <-ch:
		if err == nil {
			r.Partition, r.Offset, r.Timestamp = cp.Partition, cp.Offset, cp.Timestamp
			return nil
		}
		if pe, ok := err.(*polykafka.Error); ok && pe.Op == "producer: send" {
			return &polykafka.Error{Code: pe.Code, Op: op, Msg: pe.Msg, Err: pe.Err}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return errs.Deadline(op, "not acknowledged before the deadline", err, nil)
		}
		return err
	case <-ctx.Done():
		if state.CompareAndSwap(sendWaiting, sendAbandoned) {
			p.abandon()
		}
		return errs.Deadline(op, "not acknowledged before the deadline", ctx.Err(), nil)
	}
}

// The states of a Send's record: waited for, delivered, or abandoned by
// a Send whose context ended first.
const (
	sendWaiting int32 = iota
	sendDelivered
	sendAbandoned
)

// Flush waits until the callback of every record sent before the call has
// run (and of any sent meanwhile), or ctx is done.
func (p *Producer) Flush(ctx context.Context) error {
	const op = "producer: Flush"
	if p.closed.Load() {
		return polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	return p.flush(ctx, op, false)
}

// With skipAbandoned (Close) it does not wait for records whose Send
// already returned.
func (p *Producer) flush(ctx context.Context, op string, skipAbandoned bool) error {
	if p.inflight() == 0 {
		return nil
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = p.d.Flush(fctx) }() // sends now; the wait is ours
	if err := p.waitIdle(ctx, skipAbandoned); err != nil {
		return errs.Deadline(op, strconv.FormatInt(p.inflight(), 10)+" record(s) not yet acknowledged", err, nil)
	}
	return nil
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
// delivered, fails the rest (their callbacks get an Unavailable error that
// says Close gave up on them), and releases the client. Every callback has
// run when Close returns; failing what could not be delivered takes at most
// 10s beyond CloseTimeout. It is idempotent: later calls return the first
// call's result. An open transaction is aborted.
func (p *Producer) Close() error {
	const op = "producer: Close"
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.once {
		return p.closeErr
	}
	p.once = true
	p.closed.Store(true)
	p.bgCancel()
	<-p.bgDone
	p.bgWG.Wait()

	var errList []error
	ctx, cancel := context.WithTimeout(context.Background(), p.s.CloseTimeout)
	if err := p.flush(ctx, op, true); err != nil {
		errList = append(errList, err)
		p.gaveUp.Store(true)
	}
	p.lookCancel()
	cancel()
	p.txMu.Lock()
	if p.inTx {
		actx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
		if err := p.d.(driver.Transactor).EndTransaction(actx, false); err != nil {
			errList = append(errList, p.wrap(op, err))
		}
		cancel()
		p.inTx = false
	}
	p.txMu.Unlock()

	ctx, cancel = context.WithTimeout(context.Background(), phaseTimeout)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.d.Close(ctx) }()
	select {
	case err := <-closed:
		if err != nil {
			errList = append(errList, p.wrap(op, err))
		}
	case <-ctx.Done():
		errList = append(errList, errs.Deadline(op, "the backend did not close", ctx.Err(), nil))
	}
	if err := p.waitIdle(ctx, false); err != nil {
		errList = append(errList, polykafka.NewError(polykafka.Unknown, op,
			strconv.FormatInt(p.inflight(), 10)+" callback(s) never ran: the backend lost them (a bug in the adapter), or a callback calls Close", nil))
	}
	clock.Release()
	p.closeErr = errors.Join(errList...)
	return p.closeErr
}

// phaseTimeout bounds aborting an open transaction and closing the
// backend, each, in Close.
const phaseTimeout = 10 * time.Second
