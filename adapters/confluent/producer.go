//go:build cgo

package confluent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// flushSlice bounds one kafka.Producer.Flush call. Flush runs
// rd_kafka_flush on a goroutine of its own that may outlive it by up to the
// slice; Close waits that long after the last Flush before destroying the
// client.
const flushSlice = 20 * time.Millisecond

// maxLinger is the largest linger.ms librdkafka accepts; longer Linger
// values are cut to it.
const maxLinger = 900 * time.Second

// unknownTopicWait is how long librdkafka holds records of a topic it does
// not find before failing them (topic.metadata.propagation.max.ms).
const unknownTopicWait = time.Second

type producer struct {
	cluster    // its life guards every call into the client
	kp         *kafka.Producer
	delivered  func(*polykafka.Record, error, func(*polykafka.Record, error))
	idempotent bool
	txn        bool
	log        *slog.Logger
	logsDone   <-chan struct{}
	drained    chan struct{} // closed when the delivery-report loop has ended

	inflight  pendingList // handed to librdkafka, not yet reported
	smu       sync.Mutex
	slab      []pending     // where the next pendings come from
	space     chan struct{} // signalled by each delivery report: room in librdkafka's queue
	closedCh  chan struct{} // closed with closed
	reported  chan struct{} // signalled by each delivery report, for Close
	lastFlush atomic.Int64  // UnixNano by which the last Flush's goroutine has returned
}

// pending is one record handed to librdkafka; it travels as the message's
// Opaque and comes back with its delivery report.
type pending struct {
	rec        *polykafka.Record
	done       func(*polykafka.Record, error)
	stamped    time.Time // the timestamp Produce gave a record that had none
	once       atomic.Bool
	prev, next *pending // in pendingList
}

// pendingSlab is how many pendings are allocated at once: one allocation
// per pendingSlab records instead of one per record. A slab is garbage once
// none of its pendings is referenced (by the binding's Opaque or the
// inflight list) any more; nothing is recycled by hand.
const pendingSlab = 256

// pendingList is the set of records handed to librdkafka and not yet
// reported: an intrusive list, so that tracking a record allocates
// nothing. Close fails what is left in it after the client is closed.
type pendingList struct {
	mu   sync.Mutex
	head *pending
	n    int
}

func (l *pendingList) add(pd *pending) {
	l.mu.Lock()
	pd.prev, pd.next = nil, l.head
	if l.head != nil {
		l.head.prev = pd
	}
	l.head = pd
	l.n++
	l.mu.Unlock()
}

func (l *pendingList) remove(pd *pending) {
	l.mu.Lock()
	if pd.prev != nil {
		pd.prev.next = pd.next
	} else if l.head == pd {
		l.head = pd.next
	} else {
		l.mu.Unlock()
		return // not in the list
	}
	if pd.next != nil {
		pd.next.prev = pd.prev
	}
	pd.prev, pd.next = nil, nil
	l.n--
	l.mu.Unlock()
}

func (l *pendingList) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// takeAll empties the list and returns what was in it.
func (l *pendingList) takeAll() []*pending {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*pending
	for pd := l.head; pd != nil; {
		next := pd.next
		pd.prev, pd.next = nil, nil
		out = append(out, pd)
		pd = next
	}
	l.head, l.n = nil, 0
	return out
}

var _ driver.Producer = (*producer)(nil)

// producerConfig returns the producer's librdkafka configuration: the
// connection, what polykafka's options ask for, then the application's
// ConfigMap (which wins), then what the adapter needs to work, which cannot
// be overridden.
func (b *Backend) producerConfig(cfg driver.ProducerConfig) (kafka.ConfigMap, error) {
	m, err := b.baseConfig("OpenProducer")
	if err != nil {
		return nil, err
	}
	opts := kafka.ConfigMap{
		"acks": cfg.Acks,
		// Java-compatible key placement: murmur2 of the key (positive part,
		// modulo the partition count); a nil key goes to a random partition.
		"partitioner":               "murmur2_random",
		"linger.ms":                 int(min(cfg.Linger, maxLinger).Milliseconds()),
		"go.delivery.report.fields": "none",
		// librdkafka holds records of a topic it does not find for 30 s
		// by default before failing them: cut to about the other clients'
		// wait (franz-go's UnknownTopicRetries, sarama's retries), so that
		// Send to a missing topic says NotFound at the same time on every
		// backend. The portable layer looks a topic up (an uncached
		// metadata request) before it reports NotFound, which covers a
		// topic still propagating.
		"topic.metadata.propagation.max.ms": int(unknownTopicWait.Milliseconds()),
	}
	switch cfg.Compression {
	case driver.CompressionNone:
		opts["compression.type"] = "none" // librdkafka's name for no codec
	case driver.CompressionGzip, driver.CompressionSnappy, driver.CompressionLZ4, driver.CompressionZstd:
		opts["compression.type"] = string(cfg.Compression) // librdkafka's names are the driver's
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, "confluent: OpenProducer", "compression "+string(cfg.Compression), nil)
	}
	if cfg.BatchBytes > 0 {
		opts["batch.size"] = int(cfg.BatchBytes)
	}
	// Kafka's delivery.timeout.ms (librdkafka's message.timeout.ms, of
	// which delivery.timeout.ms is an alias): the portable layer made it
	// longer than Linger, as librdkafka requires.
	timeout := max(cfg.DeliveryTimeout, min(cfg.Linger, maxLinger)+time.Second)
	if cfg.TransactionalID != "" {
		// librdkafka requires message.timeout.ms <= transaction.timeout.ms
		// (60 s by default): a transactional record's delivery is bounded
		// by its transaction.
		txTimeout := 60 * time.Second
		if v, err := b.cfg.Get("transaction.timeout.ms", 60000); err == nil {
			if ms, ok := v.(int); ok {
				txTimeout = time.Duration(ms) * time.Millisecond
			}
		}
		timeout = min(timeout, txTimeout)
	}
	opts["message.timeout.ms"] = int(timeout.Milliseconds())
	if cfg.Idempotence != driver.IdempotenceOff || cfg.TransactionalID != "" {
		opts["enable.idempotence"] = true
	}
	if cfg.TransactionalID != "" {
		opts["transactional.id"] = cfg.TransactionalID
	}
	if _, set := b.cfg["delivery.timeout.ms"]; set {
		delete(opts, "message.timeout.ms") // the application's alias wins
	}
	for k, v := range opts {
		if _, set := b.cfg[k]; !set {
			m[k] = v
		}
	}
	// Delivery reports come on Events(), which the adapter drains.
	m["go.delivery.reports"] = true
	m["go.batch.producer"] = false
	return m, nil
}

// OpenProducer implements driver.Backend. Creating a librdkafka producer
// does not block (it connects in the background), so ctx is only used by a
// transactional producer, which is initialised (InitTransactions) before
// OpenProducer returns.
func (b *Backend) OpenProducer(ctx context.Context, cfg driver.ProducerConfig) (driver.Producer, error) {
	m, err := b.producerConfig(cfg)
	if err != nil {
		return nil, err
	}
	kp, err := kafka.NewProducer(&m)
	if err != nil {
		return nil, opErr(polykafka.InvalidArgument, "OpenProducer", err)
	}
	idem, _ := m.Get("enable.idempotence", false)
	p := &producer{
		cluster:   cluster{md: kp},
		kp:        kp,
		delivered: cfg.Delivered,
		log:       cfg.Logger,
		drained:   make(chan struct{}),
		space:     make(chan struct{}, 1),
		closedCh:  make(chan struct{}),
		reported:  make(chan struct{}, 1),
		txn:       cfg.TransactionalID != "",
	}
	p.idempotent, _ = idem.(bool)
	p.logsDone = startLogs(m, cfg.Logger, kp.Logs())
	go p.drain()
	if p.txn {
		tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
		err := kp.InitTransactions(tctx)
		cancel()
		if err != nil {
			_ = p.Close(context.Background())
			return nil, err
		}
	}
	return p, nil
}

// drain is the delivery-report loop: it reads Events() until Close closes
// it, so that librdkafka's queue never backs up (Flush waits forever when
// nobody reads Events(), confluent-kafka-go#366).
func (p *producer) drain() {
	defer close(p.drained)
	for ev := range p.kp.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			pd, ok := e.Opaque.(*pending)
			if !ok {
				continue // produced natively through As, without our Opaque
			}
			p.report(pd, e, p.timedOut(e.TopicPartition.Error))
		case kafka.Error:
			p.auth.note(e)
			lvl := slog.LevelWarn
			switch {
			case e.IsFatal():
				lvl = slog.LevelError
			case e.Code() == kafka.ErrTransport || e.Code() == kafka.ErrAllBrokersDown:
				// librdkafka reconnects by itself and logs these too.
				lvl = slog.LevelDebug
			}
			p.log.Log(context.Background(), lvl, "polykafka: confluent: producer error", "err", e)
		}
	}
}

// timedOut translates a record that timed out (message.timeout.ms)
// while librdkafka could not authenticate: librdkafka retries a failed
// authentication like a lost connection, and reports the record as timed
// out; the record failed because of the authentication failure, whose
// error (code PermissionDenied) comes first, followed by the timeout.
func (p *producer) timedOut(err error) error {
	if err == nil { // every delivered record: errors.As's target would escape
		return nil
	}
	var ke kafka.Error
	if !errors.As(err, &ke) || ke.Code() != kafka.ErrMsgTimedOut {
		return err
	}
	if aerr := p.auth.current(); aerr != nil {
		return fmt.Errorf("%w (while the record waited, until: %w)", aerr, err)
	}
	return err
}

// report calls Delivered for pd exactly once.
func (p *producer) report(pd *pending, m *kafka.Message, err error) {
	if !pd.once.CompareAndSwap(false, true) {
		return
	}
	p.inflight.remove(pd)
	r, done := pd.rec, pd.done
	pd.rec, pd.done = nil, nil
	if err == nil && m != nil {
		p.auth.succeeded()
		r.Partition = m.TopicPartition.Partition
		r.Offset = int64(m.TopicPartition.Offset)
		if !pd.stamped.IsZero() {
			r.Timestamp = pd.stamped
		}
	}
	select {
	case p.space <- struct{}{}:
	default:
	}
	select {
	case p.reported <- struct{}{}:
	default:
	}
	p.delivered(r, err, done)
}

// Produce implements driver.Producer. When librdkafka's queue is full
// (queue.buffering.max.messages or .kbytes), it waits for a delivery report
// to make room, or for ctx.
func (p *producer) Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error)) {
	pd := p.newPending()
	pd.rec, pd.done = r, done
	ts := r.Timestamp
	if ts.IsZero() {
		// librdkafka's delivery reports carry no timestamp: stamp the
		// record here, so that the timestamp reported on success is the
		// record's (CreateTime) timestamp, at millisecond precision.
		ts = time.UnixMilli(time.Now().UnixMilli())
		pd.stamped = ts
	}
	// The binding copies the message (and reads the topic) in Produce: it
	// stays on the stack, as a raw caller's does, and points at the
	// record's topic rather than a copy that would escape.
	m := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &r.Topic, Partition: kafka.PartitionAny},
		Key:            r.Key,
		Value:          r.Value,
		Timestamp:      ts,
		Opaque:         pd,
	}
	if r.Partition >= 0 {
		m.TopicPartition.Partition = r.Partition
	}
	if len(r.Headers) > 0 {
		m.Headers = make([]kafka.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			p.report(pd, nil, err)
			return
		}
		p.life.RLock()
		if p.closed {
			p.life.RUnlock()
			p.report(pd, nil, errClosed)
			return
		}
		p.inflight.add(pd)
		err := p.kp.Produce(m, nil)
		p.life.RUnlock()
		if err == nil {
			return
		}
		var ke kafka.Error
		if !errors.As(err, &ke) || ke.Code() != kafka.ErrQueueFull {
			p.report(pd, nil, err)
			return
		}
		p.inflight.remove(pd)
		select {
		case <-p.space:
		case <-ctx.Done():
		case <-p.closedCh:
		}
	}
}

// newPending returns a zero pending from the current slab.
func (p *producer) newPending() *pending {
	p.smu.Lock()
	if len(p.slab) == 0 {
		p.slab = make([]pending, pendingSlab)
	}
	pd := &p.slab[0]
	p.slab = p.slab[1:]
	p.smu.Unlock()
	return pd
}

// Flush implements driver.Producer: it makes librdkafka send what it
// buffers now (rd_kafka_flush ignores linger.ms) and waits for the
// deliveries, until ctx is done.
func (p *producer) Flush(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.life.RLock()
		if p.closed {
			p.life.RUnlock()
			return errClosed
		}
		slice := flushSlice
		if dl, ok := ctx.Deadline(); ok {
			slice = min(slice, max(time.Until(dl), time.Millisecond))
		}
		p.lastFlush.Store(time.Now().Add(slice + flushSlice).UnixNano())
		left := p.kp.Flush(int(slice.Milliseconds()))
		p.life.RUnlock()
		if left == 0 {
			return nil
		}
	}
}

// Refresh implements driver.Producer: a metadata request for each topic
// also updates librdkafka's partition counts, which its partitioner uses.
func (p *producer) Refresh(ctx context.Context, counts map[string]int32) error {
	topics := make([]string, 0, len(counts))
	for t := range counts {
		topics = append(topics, t)
	}
	_, err := p.PartitionCounts(ctx, topics)
	return err
}

// Idempotent implements driver.Producer.
func (p *producer) Idempotent() bool { return p.idempotent }

// Close implements driver.Producer: it purges what librdkafka still
// holds (the portable layer has flushed before), so that each purged record
// is reported with librdkafka's ErrPurgeQueue or ErrPurgeInflight (code
// Closed), waits for those reports until ctx is done, then closes the
// client. Records whose report never came (none is expected) are failed by
// the adapter, so that Delivered has been called for every record when
// Close returns.
func (p *producer) Close(ctx context.Context) error {
	p.life.Lock()
	if p.closed {
		p.life.Unlock()
		return errClosed
	}
	p.closed = true
	close(p.closedCh)
	p.life.Unlock()
	var errs []error
	if err := p.kp.Purge(kafka.PurgeQueue | kafka.PurgeInFlight); err != nil {
		errs = append(errs, err)
	}
	// librdkafka queues the purged records' reports at once; the binding's
	// poller moves them to Events(), which drain reads. Each report
	// signals reported.
wait:
	for p.inflight.len() > 0 {
		select {
		case <-p.reported:
		case <-ctx.Done():
			break wait
		}
	}
	// Flush's own goroutine may still be inside rd_kafka_flush for up to a
	// slice after Flush returned; the client must outlive it.
	if d := time.Until(time.Unix(0, p.lastFlush.Load())); d > 0 {
		t := time.NewTimer(d)
		<-t.C
	}
	p.kp.Close()
	<-p.drained
	<-p.logsDone
	for _, pd := range p.inflight.takeAll() {
		p.report(pd, nil, errClosed)
	}
	if len(errs) > 0 {
		return fmt.Errorf("confluent: close producer: %w", errors.Join(errs...))
	}
	return nil
}

// As implements driver.Producer.
func (p *producer) As(target any) bool {
	if t, ok := target.(**kafka.Producer); ok && t != nil {
		*t = p.kp
		return true
	}
	return false
}
