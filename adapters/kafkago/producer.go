package kafkago

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/backoff"
)

// producer is a kafka.Writer in Async mode: Produce hands one message to
// WriteMessages, and the Writer's Completion reports it.
type producer struct {
	cluster
	cfg driver.ProducerConfig
	w   *kafka.Writer

	// count is the number of undelivered records counted against limit;
	// space is closed to wake the sends waiting for room (waiters).
	count   atomic.Int64
	limit   int64
	waiters atomic.Int32
	spaceMu sync.Mutex
	space   chan struct{}

	// parked holds, in order, records the Writer refused because the
	// cluster was unreachable (no metadata yet): kafka.Writer does not
	// buffer them, so the producer does, until each record's context
	// ends or the Writer takes it (parkLoop). Later records queue behind
	// them, so that a partition's records keep their order.
	parkMu      sync.Mutex
	parked      []parkedRecord
	parkRunning bool
	parkWG      sync.WaitGroup
	closedCh    chan struct{}

	mu     sync.Mutex
	closed bool
	// queue holds, in order, the records Produce took and writeLoop has
	// not handed to the Writer yet; spare is writeLoop's other buffer.
	queue   []queued
	spare   []queued
	msgs    []kafka.Message // writeLoop's buffer between two loops
	writing bool            // writeLoop runs
	writeWG sync.WaitGroup
	// inflight is the list of records handed to the Writer and not yet
	// delivered (a sentinel of a doubly linked list through pending), for
	// Close to fail what the Writer has not delivered by its deadline.
	inflight pending
}

// pending is a record handed to Produce and not yet delivered. It rides in
// kafka.Message.WriterData.
type pending struct {
	r         *polykafka.Record
	done      func(*polykafka.Record, error)
	partition int32 // the record's own partition, or -1
	counted   bool  // holds a place in producer.count
	state     atomic.Int32
	// deadline is when the record fails if the Writer has not taken it
	// (it is parked): its Produce time plus the delivery timeout.
	deadline   time.Time
	prev, next *pending // in producer.inflight, guarded by producer.mu
}

// queued is a record Produce took, waiting for writeLoop.
type queued struct {
	ctx context.Context
	pd  *pending
}

// parkedRecord is a record waiting for the Writer to take it.
type parkedRecord struct {
	ctx context.Context
	pd  *pending
	msg kafka.Message
}

// pending states: a record is delivered by whoever moves it out of
// statePending first.
const (
	statePending int32 = iota
	stateClaimed       // by a Completion call, which delivers it
	stateDone
)

// unlink removes pd from the in-flight list. p.mu is held.
func (pd *pending) unlink() {
	if pd.prev != nil {
		pd.prev.next, pd.next.prev = pd.next, pd.prev
		pd.prev, pd.next = nil, nil
	}
}

var _ driver.Producer = (*producer)(nil)

// OpenProducer implements driver.Backend.
func (b *Backend) OpenProducer(ctx context.Context, cfg driver.ProducerConfig) (driver.Producer, error) {
	const op = "kafkago: OpenProducer"
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.TransactionalID != "" {
		return nil, polykafka.NewError(polykafka.Unimplemented, op, "kafka-go has no transactional producer", nil)
	}
	if cfg.Idempotence == driver.IdempotenceRequired {
		return nil, polykafka.NewError(polykafka.Unimplemented, op, "kafka-go has no idempotent producer", nil)
	}
	d, tr, err := b.natives()
	if err != nil {
		return nil, err
	}
	p := &producer{cluster: b.newCluster(d, tr), cfg: cfg}
	p.cluster.closed = p.isClosed
	info, errs := loggers(cfg.Logger)
	w := &kafka.Writer{
		Addr:         b.addr(),
		Balancer:     balancerFor(),
		RequiredAcks: kafka.RequiredAcks(cfg.Acks),
		BatchTimeout: cfg.Linger,
		BatchBytes:   int64(cfg.BatchBytes),
		Logger:       info,
		ErrorLogger:  errs,
	}
	if w.BatchTimeout <= 0 {
		w.BatchTimeout = time.Microsecond // kafka-go's zero means 1 s (kafka-go#417)
	}
	switch cfg.Compression {
	case driver.CompressionGzip:
		w.Compression = kafka.Gzip
	case driver.CompressionSnappy:
		w.Compression = kafka.Snappy
	case driver.CompressionLZ4:
		w.Compression = kafka.Lz4
	case driver.CompressionZstd:
		w.Compression = kafka.Zstd
	}
	if b.opts.ConfigureWriter != nil {
		b.opts.ConfigureWriter(w)
	}
	if w.MaxAttempts == 0 {
		// kafka-go counts attempts, not time: retry a batch for about the
		// delivery timeout (Kafka's delivery.timeout.ms) at the Writer's
		// backoff, which reaches WriteBackoffMax after three attempts.
		w.MaxAttempts = attemptsFor(cfg.DeliveryTimeout, cmp.Or(w.WriteBackoffMax, time.Second))
	}
	w.Transport = tr
	w.Async = true
	w.Completion = p.completion
	p.w = w
	p.closedCh = make(chan struct{})
	p.limit = int64(b.opts.MaxBufferedRecords)
	if p.limit == 0 {
		p.limit = 10000
	}
	p.inflight.prev, p.inflight.next = &p.inflight, &p.inflight
	return p, nil
}

// attemptsFor is the number of Writer attempts that spans about d at one
// attempt per backoff (at least kafka-go's default, 10).
func attemptsFor(d, backoff time.Duration) int {
	return max(10, 3+int((d+backoff-1)/backoff))
}

// balancerFor returns the Writer's balancer: a record's own partition if it
// has one, else kafka-go's Murmur2Balancer, whose keyed path is Kafka's
// murmur2 (driver.KeyPartition: the Writer passes partitions 0..n-1 in
// order) and which spreads nil keys at random.
func balancerFor() kafka.Balancer {
	m := kafka.Murmur2Balancer{}
	return kafka.BalancerFunc(func(msg kafka.Message, partitions ...int) int {
		if pd, ok := msg.WriterData.(*pending); ok && pd.partition >= 0 {
			return int(pd.partition)
		}
		return m.Balance(msg, partitions...)
	})
}

// Produce implements driver.Producer.
func (p *producer) Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error)) {
	pd := pendingPool.Get().(*pending)
	pd.r, pd.done, pd.partition, pd.counted = r, done, -1, false
	pd.deadline = time.Now().Add(p.cfg.DeliveryTimeout)
	pd.state.Store(statePending)
	if err := ctx.Err(); err != nil {
		p.finish(pd, err)
		return
	}
	if err := p.acquire(ctx); err != nil {
		p.finish(pd, err)
		return
	}
	pd.counted = p.limit >= 0
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.finish(pd, errClosed)
		return
	}
	pd.prev, pd.next = p.inflight.prev, &p.inflight
	p.inflight.prev.next = pd
	p.inflight.prev = pd
	p.mu.Unlock()

	if p.cfg.ManualPartitions && r.Partition >= 0 {
		n, err := p.cachedCount(ctx, r.Topic)
		if err != nil {
			p.finish(pd, err)
			return
		}
		if r.Partition >= n {
			p.finish(pd, fmt.Errorf("%w: %s has %d partitions", errInvalidPartition, r.TopicPartition(), n))
			return
		}
		pd.partition = r.Partition
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.finish(pd, errClosed)
		return
	}
	p.queue = append(p.queue, queued{ctx, pd})
	if !p.writing {
		p.writing = true
		p.writeWG.Add(1)
		go p.writeLoop()
	}
	p.mu.Unlock()
}

// message returns pd's record as the Writer takes it.
func message(pd *pending) kafka.Message {
	r := pd.r
	msg := kafka.Message{Topic: r.Topic, Key: r.Key, Value: r.Value, Time: r.Timestamp, WriterData: pd}
	if msg.Time.IsZero() {
		// What the Writer would stamp (writer.go writerRecords), kept so
		// that the delivered record carries its timestamp.
		msg.Time = time.Now()
	}
	if len(r.Headers) > 0 {
		msg.Headers = make([]kafka.Header, len(r.Headers))
		for i, h := range r.Headers {
			msg.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return msg
}

// writeLoop hands the queued records to the Writer, in order, all that
// queued up while the previous call ran in one WriteMessages call, until
// the queue is empty. kafka.Writer's WriteMessages costs a map, slices and
// a lock per call whatever the number of messages, and its batches only
// fill while the caller keeps up with BatchTimeout: one call per record
// (what a kafka-go application writing records one by one does) spent
// more in those than in the records. A record whose context ended while
// it was queued fails with the context's error.
func (p *producer) writeLoop() {
	defer p.writeWG.Done()
	var msgs []kafka.Message
	var recs []queued
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			// The buffers outlive this loop: the next one, started by
			// the next Produce, reuses them.
			p.writing = false
			p.spare, p.msgs = recs[:0], msgs[:0]
			p.mu.Unlock()
			return
		}
		if recs == nil {
			recs, p.spare = p.spare, nil
			msgs, p.msgs = p.msgs, nil
		}
		recs, p.queue = p.queue, recs[:0]
		p.mu.Unlock()

		live := recs[:0]
		for _, q := range recs {
			if err := q.ctx.Err(); err != nil {
				p.finish(q.pd, err)
				continue
			}
			live = append(live, q)
		}
		p.parkMu.Lock()
		parked := len(p.parked) > 0
		if parked {
			for _, q := range live {
				p.parked = append(p.parked, parkedRecord{q.ctx, q.pd, message(q.pd)})
			}
		}
		p.parkMu.Unlock()
		if !parked && len(live) > 0 {
			msgs = msgs[:0]
			for _, q := range live {
				msgs = append(msgs, message(q.pd))
			}
			// Every error of WriteMessages comes before it hands the
			// Writer any message (sizes, topics and partition counts are
			// checked first): on one, each record is written on its own,
			// to get its own error, or parked.
			if len(live) == 1 || p.w.WriteMessages(live[0].ctx, msgs...) != nil {
				for i, q := range live {
					p.writeOne(parkedRecord{q.ctx, q.pd, msgs[i]})
				}
			}
			clear(msgs)
		}
		clear(recs)
	}
}

// writeOne hands one record to the Writer, or parks it behind the parked
// records or when the Writer cannot reach the cluster, or fails it.
func (p *producer) writeOne(q parkedRecord) {
	p.parkMu.Lock()
	if len(p.parked) > 0 {
		p.parked = append(p.parked, q)
		p.parkMu.Unlock()
		return
	}
	p.parkMu.Unlock()
	err := p.w.WriteMessages(q.ctx, q.msg)
	switch {
	case err == nil:
	case unreachable(err) && q.ctx.Err() == nil:
		p.park(q)
	default:
		p.finish(q.pd, err)
	}
}

// unreachable reports whether the Writer refused a record because it could
// not reach the cluster (its metadata lookup failed), rather than for the
// record itself.
func unreachable(err error) bool {
	return errorCode(err) == polykafka.Unavailable
}

// park queues r behind the parked records and starts parkLoop if needed.
func (p *producer) park(r parkedRecord) {
	p.parkMu.Lock()
	defer p.parkMu.Unlock()
	p.parked = append(p.parked, r)
	if !p.parkRunning {
		p.parkRunning = true
		p.parkWG.Add(1)
		go p.parkLoop()
	}
}

// parkLoop hands the parked records to the Writer in order, the first
// again after the Writer's write backoff (WriteBackoffMin/Max, kafka-go's
// defaults 100 ms and 1 s, jittered exponential) while the cluster stays
// unreachable. A record whose context ends first is failed
// with the context's error; Close fails the rest.
func (p *producer) parkLoop() {
	defer p.parkWG.Done()
	writeBackoff := writeSchedule(p.w)
	fails := 0
	for {
		p.parkMu.Lock()
		if len(p.parked) == 0 || p.isClosedLocked() {
			p.parked = nil
			p.parkRunning = false
			p.parkMu.Unlock()
			return
		}
		h := p.parked[0]
		p.parkMu.Unlock()
		pop := func() {
			p.parkMu.Lock()
			p.parked[0] = parkedRecord{}
			p.parked = p.parked[1:]
			p.parkMu.Unlock()
		}
		if err := h.ctx.Err(); err != nil {
			p.finish(h.pd, err)
			pop()
			continue
		}
		err := p.w.WriteMessages(h.ctx, h.msg)
		switch {
		case err == nil:
			pop()
			fails = 0
		case unreachable(err) && h.ctx.Err() == nil && time.Now().Before(h.pd.deadline):
			fails++
			t := time.NewTimer(min(writeBackoff.Delay(fails), time.Until(h.pd.deadline)))
			select {
			case <-t.C:
			case <-h.ctx.Done():
			case <-p.closedCh:
			}
			t.Stop()
		default:
			if cerr := h.ctx.Err(); cerr != nil {
				err = cerr
			}
			p.finish(h.pd, err)
			pop()
		}
	}
}

// isClosedLocked reports whether Close has started; p.parkMu is held (the
// order is parkMu, then mu).
func (p *producer) isClosedLocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// cachedCount is the partition count the Writer partitions with (the
// transport's metadata cache).
func (p *producer) cachedCount(ctx context.Context, topic string) (int32, error) {
	res, err := p.tr.RoundTrip(ctx, p.b.addr(), &metadataAPI.Request{TopicNames: []string{topic}})
	if err != nil {
		return 0, err
	}
	for _, t := range res.(*metadataAPI.Response).Topics {
		if t.Name == topic {
			if t.ErrorCode != 0 {
				return 0, kafka.Error(t.ErrorCode)
			}
			return int32(len(t.Partitions)), nil
		}
	}
	return 0, kafka.UnknownTopicOrPartition
}

// completion is the Writer's Completion function. It runs on the Writer's
// goroutine of the partition, between two produce requests, so it takes
// the lock once per batch.
func (p *producer) completion(msgs []kafka.Message, err error) {
	p.mu.Lock()
	for i := range msgs {
		if pd, ok := msgs[i].WriterData.(*pending); ok && pd.state.CompareAndSwap(statePending, stateClaimed) {
			pd.unlink()
		}
	}
	p.mu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		pd, ok := m.WriterData.(*pending)
		if !ok || pd.state.Load() != stateClaimed {
			continue
		}
		pd.state.Store(stateDone)
		p.release(pd)
		r, done := pd.r, pd.done
		if err == nil {
			r.Partition = int32(m.Partition)
			r.Offset = m.Offset
			r.Timestamp = m.Time
		}
		// The Writer drops its batch after Completion: pd is free again.
		m.WriterData = nil
		pd.r, pd.done = nil, nil
		pendingPool.Put(pd)
		p.cfg.Delivered(r, err, done)
	}
}

// pendingPool recycles the pending values that went through the Writer's
// Completion (the only path after which the Writer holds none).
var pendingPool = sync.Pool{New: func() any { return new(pending) }}

// finish delivers pd with err unless it was delivered already.
func (p *producer) finish(pd *pending, err error) {
	if !pd.state.CompareAndSwap(statePending, stateDone) {
		return
	}
	p.mu.Lock()
	pd.unlink()
	p.mu.Unlock()
	p.release(pd)
	p.cfg.Delivered(pd.r, err, pd.done)
}

// acquire takes a place among the at most limit undelivered records,
// waiting for one until ctx ends (kafka.Writer buffers without bound). A
// waiting send holds no place, so any number of them wait without
// starving each other; they are woken when the count falls to the low
// water mark (an eighth below the limit), not at every delivery.
func (p *producer) acquire(ctx context.Context) error {
	if p.limit < 0 {
		return nil
	}
	for {
		if n := p.count.Load(); n < p.limit {
			if p.count.CompareAndSwap(n, n+1) {
				return nil
			}
			continue
		}
		p.spaceMu.Lock()
		p.waiters.Add(1)
		if p.count.Load() < p.limit {
			p.waiters.Add(-1)
			p.spaceMu.Unlock()
			continue
		}
		if p.space == nil {
			p.space = make(chan struct{})
		}
		ch := p.space
		p.spaceMu.Unlock()
		select {
		case <-ch:
			p.waiters.Add(-1)
		case <-ctx.Done():
			p.waiters.Add(-1)
			return ctx.Err()
		}
	}
}

// release gives back pd's place.
func (p *producer) release(pd *pending) {
	if !pd.counted {
		return
	}
	if n := p.count.Add(-1); n <= p.limit-max(p.limit/8, 1) && p.waiters.Load() > 0 {
		p.wake()
	}
}

func (p *producer) wake() {
	p.spaceMu.Lock()
	if p.space != nil {
		close(p.space)
		p.space = nil
	}
	p.spaceMu.Unlock()
}

// Flush implements driver.Producer. kafka.Writer has no flush: a batch is
// sent when full or when BatchTimeout (the portable Linger, 1µs for a zero
// Linger) expires, so there is nothing to do.
func (p *producer) Flush(ctx context.Context) error {
	if p.isClosed() {
		return errClosed
	}
	return ctx.Err()
}

// Refresh implements driver.Producer. kafka.Transport's cache expires
// after MetadataTTL (1 s on the transport the adapter builds), after which
// the Writer sees grown counts. A topic of counts that the cache lacks
// (created after its last refresh: the portable layer calls Refresh after
// it found the topic with an uncached request) is fetched now: the
// transport sends a metadata request it would otherwise answer from its
// cache only when AllowAutoTopicCreation is set, and then refreshes its
// cache until the topic shows (transport.go, roundTrip and
// refreshMetadata). The topics exist, so nothing is created.
func (p *producer) Refresh(ctx context.Context, counts map[string]int32) error {
	if p.isClosed() {
		return errClosed
	}
	var unknown []string
	for topic := range counts {
		if _, err := p.cachedCount(ctx, topic); err != nil {
			unknown = append(unknown, topic)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	ctx, cancel := p.b.opCtx(ctx)
	defer cancel()
	_, err := p.tr.RoundTrip(ctx, p.b.addr(), &metadataAPI.Request{TopicNames: unknown, AllowAutoTopicCreation: true})
	return err
}

// Idempotent implements driver.Producer: kafka-go has no idempotent
// producer.
func (*producer) Idempotent() bool { return false }

func (p *producer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close implements driver.Producer: Writer.Close sends what the Writer
// buffers and waits for it; parked records (the cluster was unreachable)
// and what is still undelivered when ctx ends are failed.
func (p *producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.closedCh)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		p.writeWG.Wait() // what Produce took reaches the Writer first
		_ = p.w.Close()
		p.parkWG.Wait()
		if p.b.opts.Transport == nil {
			p.tr.CloseIdleConnections()
		}
	}()
	var err error
	select {
	case <-closed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	var rest []*pending
	for pd := p.inflight.next; pd != &p.inflight; pd = pd.next {
		rest = append(rest, pd)
	}
	p.mu.Unlock()
	for _, pd := range rest {
		p.finish(pd, errClosed)
	}
	return err
}

// As implements driver.Producer: *kafka.Writer and *kafka.Client.
func (p *producer) As(target any) bool {
	switch t := target.(type) {
	case **kafka.Writer:
		*t = p.w
	case **kafka.Client:
		*t = p.client
	default:
		return false
	}
	return true
}

// writeSchedule is the Writer's own write backoff (WriteBackoffMin/Max,
// kafka-go's defaults 100 ms and 1 s when unset), jittered exponential.
func writeSchedule(w *kafka.Writer) backoff.Schedule {
	return backoff.Schedule{
		Min: cmp.Or(w.WriteBackoffMin, 100*time.Millisecond),
		Max: cmp.Or(w.WriteBackoffMax, time.Second),
	}
}
