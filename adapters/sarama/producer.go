package polysarama

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/clock"
)

type producer struct {
	cluster
	delivered  func(*polykafka.Record, error, func(*polykafka.Record, error))
	log        *slog.Logger
	idempotent bool
	// transactional: the producer has a TransactionalID.
	transactional bool
	unlog         func()
	// timeout is the delivery timeout, backoff sarama's Retry.Backoff:
	// see readErrors.
	timeout, backoff time.Duration

	ap      atomic.Pointer[asyncProducer] // set once sarama's producer exists and waiting is empty
	amu     sync.Mutex
	att     *attempt   // the last attempt to create it
	waiting []*pending // produced before ap was set, in order

	closing   chan struct{} // closed when Close starts: Produce stops waiting
	closeOnce sync.Once
	mu        sync.RWMutex // Produce holds it shared while it sends to Input
	closed    bool

	feed feed // Produce's queue to the feeder, once sarama's producer exists

	cur     atomic.Pointer[chunk] // where the next pendings come from
	cmu     sync.Mutex
	chunks  map[*chunk]struct{} // chunks with records not yet delivered
	free    []*chunk            // chunks every slot of which was delivered
	settled chan struct{}       // capacity 1: a slot was released after Close started
	drained sync.WaitGroup      // the Successes and Errors readers
}

type asyncProducer struct{ sarama.AsyncProducer }

// feed is the queue between Produce and the feeder, the one goroutine
// that hands records to sarama's Input once sarama's producer exists.
//
// sarama's Input is unbuffered, and at full speed its dispatcher is mostly
// busy: the sender waits. A raw sarama application waits in a plain
// channel send; a Produce must stay cancellable by its context and by
// Close, and waiting in a select with them cost about 0.2 µs per record
// more than the plain send (selectgo locks, enqueues on and dequeues from
// every channel each time). So Produce appends the record to q and
// returns, waiting (in that select) only while q holds feedMax records,
// once per batch; the feeder takes the whole queue at once, checks each
// record's context and sends it with a plain blocking send. A record
// whose context ends while it is queued fails when the feeder reaches it.
// The feeder is the only sender on Input after the waiting records: when
// Close starts it fails what is still queued and calls AsyncClose itself,
// after its send in progress (so that no send ever races sarama's close of
// Input).
type feed struct {
	mu      sync.Mutex
	q       []*pending
	idle    bool          // the feeder waits on kick for q to fill
	stopped bool          // the feeder ended: Produce fails the record
	kick    chan struct{} // capacity 1: wakes the idle feeder
	space   chan struct{} // closed when q has room; nil while nobody waits
}

// feedMax is how many records Produce queues for the feeder before it
// waits.
const feedMax = 256

// attempt is one call of sarama.NewAsyncProducerFromClient. An idempotent
// sarama producer sends InitProducerId when it is created
// (transaction_manager.go newTransactionManager), which needs a broker; the
// adapter creates it in the background so that opening a producer does
// not. Records produced meanwhile wait in producer.waiting (each until its
// context ends) and are handed to sarama, in order, once it exists; if
// creating it fails (sarama gave up after its own retries), they fail with
// that error, and the next record or call that needs it makes a new
// attempt.
type attempt struct {
	done chan struct{}
	ap   sarama.AsyncProducer
	err  error
}

// txnProducer is a transactional producer.
type txnProducer struct{ *producer }

var (
	_ driver.Producer   = (*producer)(nil)
	_ driver.Transactor = txnProducer{}
)

// pending is one record handed to sarama: the ProducerMessage (one
// allocation for both) and what Delivered needs. It is the message's
// Metadata, so the readers of Successes and Errors find it.
type pending struct {
	c    *chunk
	stop func() bool     // stops the waiting record's context watch
	ctx  context.Context // the feeder checks it before the send
	// key and value are msg's Key and Value (by pointer: see Produce).
	key, value sarama.ByteEncoder
	msg        sarama.ProducerMessage
	r          *polykafka.Record
	done       func(*polykafka.Record, error)
	manual     bool        // the record names its partition
	fired      atomic.Bool // Delivered was called
	// deadline is when the record's delivery timeout passes.
	deadline time.Time
}

// OpenProducer implements driver.Backend.
func (b *Backend) OpenProducer(ctx context.Context, cfg driver.ProducerConfig) (driver.Producer, error) {
	const op = "sarama: OpenProducer"
	sc, err := b.config()
	if err != nil {
		return nil, err
	}
	def := sarama.NewConfig()
	pc := &sc.Producer
	if pc.RequiredAcks == def.Producer.RequiredAcks {
		switch cfg.Acks {
		case -1:
			pc.RequiredAcks = sarama.WaitForAll
		case 1:
			pc.RequiredAcks = sarama.WaitForLocal
		case 0:
			pc.RequiredAcks = sarama.NoResponse
		default:
			return nil, polykafka.NewError(polykafka.InvalidArgument, op, fmt.Sprintf("acks %d", cfg.Acks), nil)
		}
	}
	if pc.Compression == def.Producer.Compression {
		switch cfg.Compression {
		case driver.CompressionNone:
			pc.Compression = sarama.CompressionNone
		case driver.CompressionGzip:
			pc.Compression = sarama.CompressionGZIP
		case driver.CompressionSnappy:
			pc.Compression = sarama.CompressionSnappy
		case driver.CompressionLZ4:
			pc.Compression = sarama.CompressionLZ4
		case driver.CompressionZstd:
			pc.Compression = sarama.CompressionZSTD
		default:
			return nil, polykafka.NewError(polykafka.InvalidArgument, op, "compression "+string(cfg.Compression), nil)
		}
	}
	if pc.Flush.Frequency == def.Producer.Flush.Frequency {
		pc.Flush.Frequency = cfg.Linger
	}
	if pc.Flush.Bytes == def.Producer.Flush.Bytes && cfg.BatchBytes > 0 {
		pc.Flush.Bytes = int(cfg.BatchBytes)
	}
	idem := cfg.Idempotence
	if cfg.TransactionalID != "" {
		idem = driver.IdempotenceRequired
		pc.Transaction.ID = cfg.TransactionalID
	}
	if !pc.Idempotent {
		supported := sc.Version.IsAtLeast(sarama.V0_11_0_0) && pc.RequiredAcks == sarama.WaitForAll
		switch {
		case idem == driver.IdempotenceRequired && !supported:
			return nil, polykafka.NewError(polykafka.Unimplemented, op,
				fmt.Sprintf("an idempotent producer needs Config.Version >= 0.11 and acks=all (have %s, acks %d)", sc.Version, pc.RequiredAcks), errUnimplemented)
		case idem != driver.IdempotenceOff && supported:
			pc.Idempotent = true
			sc.Net.MaxOpenRequests = 1
			if pc.Retry.Max < 1 {
				pc.Retry.Max = def.Producer.Retry.Max
			}
		}
	}
	if pc.Retry.Max == def.Producer.Retry.Max && pc.Retry.BackoffFunc == nil {
		// sarama counts attempts, not time: retry every Retry.Backoff for
		// about the delivery timeout (Kafka's delivery.timeout.ms).
		pc.Retry.Max = retriesFor(cfg.DeliveryTimeout, pc.Retry.Backoff)
	}
	pc.Return.Successes = true
	pc.Return.Errors = true
	pc.Partitioner = newPartitioner

	// A producer needs the metadata of the topics it writes to, not of
	// the whole cluster; and without a full refresh at creation,
	// sarama.NewClient needs no reachable broker.
	if sc.Metadata.Full == def.Metadata.Full {
		sc.Metadata.Full = false
	}

	p := &producer{
		delivered:     cfg.Delivered,
		log:           cfg.Logger,
		idempotent:    pc.Idempotent,
		transactional: pc.Transaction.ID != "",
		closing:       make(chan struct{}),
		feed:          feed{kick: make(chan struct{}, 1)},
		settled:       make(chan struct{}, 1),
		chunks:        make(map[*chunk]struct{}),
		timeout:       cfg.DeliveryTimeout,
		backoff:       pc.Retry.Backoff,
	}
	p.gone = p.isClosed
	p.unlog = registerLogger(cfg.Logger)
	cl, err := b.newClient(ctx, op, sc)
	if err != nil {
		p.unlog()
		return nil, err
	}
	p.client = cl
	p.amu.Lock()
	p.startLocked()
	p.amu.Unlock()
	if pc.Transaction.ID != "" {
		return txnProducer{p}, nil
	}
	return p, nil
}

// retriesFor is the retry count that spans about d at one retry per
// backoff (at least sarama's default, 3).
func retriesFor(d, backoff time.Duration) int {
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	return max(3, int((d+backoff-1)/backoff))
}

// startLocked returns the attempt in flight or the last successful one,
// or starts a new attempt to create sarama's producer. p.amu is held.
func (p *producer) startLocked() *attempt {
	// a.err is set under p.amu as soon as an attempt fails, before it
	// fails the records that waited for it: a record that arrives after
	// that starts the next attempt instead of waiting for a failed one.
	if a := p.att; a != nil && a.err == nil {
		return a
	}
	a := &attempt{done: make(chan struct{})}
	p.att = a
	go p.create(a)
	return a
}

// create makes attempt a, then hands the waiting records to sarama.
func (p *producer) create(a *attempt) {
	defer close(a.done)
	ap, err := sarama.NewAsyncProducerFromClient(p.client)
	if err != nil {
		p.amu.Lock()
		a.err = err
		ws := p.waiting
		p.waiting = nil
		p.amu.Unlock()
		for _, pd := range ws {
			pd.stop()
			p.deliver(pd, err)
		}
		return
	}
	a.ap = ap
	p.drained.Add(2)
	go p.readSuccesses(ap)
	go p.readErrors(ap)
	for {
		p.amu.Lock()
		ws := p.waiting
		p.waiting = nil
		if len(ws) == 0 {
			p.ap.Store(&asyncProducer{ap})
			go p.feeder(ap)
			p.amu.Unlock()
			return
		}
		p.amu.Unlock()
		for _, pd := range ws {
			if !pd.stop() {
				continue // its context ended: unwait delivered it
			}
			select {
			case ap.Input() <- &pd.msg:
			case <-p.closing:
				p.deliver(pd, errClosed)
			}
		}
	}
}

// unwait fails a waiting record whose context ended. It stays in waiting;
// whoever takes it from there finds it delivered (deliver is once only).
func (p *producer) unwait(pd *pending, err error) { p.deliver(pd, err) }

// get returns sarama's producer, creating it if needed, within ctx. It is
// for the calls other than Produce (transactions, As).
func (p *producer) get(ctx context.Context) (sarama.AsyncProducer, error) {
	if ap := p.ap.Load(); ap != nil {
		return ap.AsyncProducer, nil
	}
	p.amu.Lock()
	a := p.startLocked()
	p.amu.Unlock()
	select {
	case <-a.done:
		return a.ap, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closing:
		return nil, errClosed
	}
}

// chunk is pendingChunk pendings allocated at once and handed out by an
// atomic index, so that the record path allocates 1/pendingChunk objects
// per record and needs no lock. The producer keeps the chunks that still
// have undelivered records, for Close to fail them if it must. The index
// (written by the sending goroutines) and the count of delivered slots
// (written by the delivering ones) are on cache lines of their own: one
// counter written from both sides moved its line between the cores for
// every record.
//
// A chunk whose slots were all delivered goes to the producer's free list,
// and the next chunk is taken from there: a chunk is about 60 KB, and
// allocating one anew for every 256 records cost about 0.1 µs per record
// in page faults, zeroing and the scavenger's madvise. At full speed
// sarama holds a great many records (66,000 of 100 B in pkbench: 260
// chunks, 15 MB), whose chunks come back in bursts as produce responses
// arrive; the free list keeps them all while records are in flight, and
// only idleFreeChunks once every chunk but the one in use was delivered.
// A delivered slot is referred to by nobody: sarama returns each message
// once and keeps no reference after that, the feeder reads nothing of a
// record after its send, and deliver fires once. The exception is a
// record that waited for sarama's producer to be created:
// producer.waiting keeps referring to it after its context failed it, so
// its chunk is marked keep and never reused. After Close no chunk is
// taken from the free list, so Close's late deliveries (once only, by
// fired) never meet a reused slot.
type chunk struct {
	next atomic.Int64 // slots handed out (or asked for: it passes pendingChunk)
	_    [56]byte
	done atomic.Int64 // slots delivered
	_    [56]byte
	keep atomic.Bool // a slot waited in producer.waiting: do not reuse
	ps   [pendingChunk]pending
}

const (
	pendingChunk   = 256
	idleFreeChunks = 4
)

// alloc returns a pending to fill, zero but for c and fired (reset by
// Produce). Only one goroutine at a time, under cmu, installs the next
// chunk in cur, and only while cur is the exhausted chunk it saw.
func (p *producer) alloc() *pending {
	for {
		c := p.cur.Load()
		if c != nil {
			if i := c.next.Add(1) - 1; i < pendingChunk {
				pd := &c.ps[i]
				pd.c = c
				return pd
			}
		}
		p.cmu.Lock()
		if p.cur.Load() == c {
			var nc *chunk
			if n := len(p.free); n > 0 {
				nc = p.free[n-1]
				p.free[n-1] = nil
				p.free = p.free[:n-1]
				nc.done.Store(0)
				nc.next.Store(0)
			} else {
				nc = new(chunk)
			}
			p.chunks[nc] = struct{}{}
			p.cur.Store(nc)
		}
		p.cmu.Unlock()
	}
}

// release counts one delivered slot of c; the last one forgets c and puts
// it on the free list (every slot of a chunk is handed out before the next
// chunk is installed, and delivered exactly once). After Close started it
// tells Close, which waits for every slot's release.
func (p *producer) release(c *chunk) {
	if c.done.Add(1) == pendingChunk {
		p.cmu.Lock()
		delete(p.chunks, c)
		if !c.keep.Load() {
			p.free = append(p.free, c)
		}
		if len(p.chunks) <= 1 && len(p.free) > idleFreeChunks {
			// Nothing in flight but the chunk in use: keep a few.
			clear(p.free[idleFreeChunks:])
			p.free = p.free[:idleFreeChunks]
		}
		p.cmu.Unlock()
	}
	if p.isClosing() {
		select {
		case p.settled <- struct{}{}: // Close waits for the last ones
		default:
		}
	}
}

// allReleased reports whether every slot handed out was delivered and
// released.
func (p *producer) allReleased() bool {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	for c := range p.chunks {
		if c.done.Load() < min(c.next.Load(), pendingChunk) {
			return false
		}
	}
	return true
}

// Produce implements driver.Producer. It never waits for sarama's producer
// to be created: until then the record waits in producer.waiting.
func (p *producer) Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error)) {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.delivered(r, errClosed, done)
		return
	}
	// From here to the send, Close waits (it takes mu), so it never sees
	// a pending being filled in.
	pd := p.alloc()
	pd.r, pd.done, pd.manual = r, done, r.Partition >= 0
	pd.fired.Store(false)
	// A coarse clock (an atomic load, not a clock read per record) is
	// precise enough for a deadline of seconds.
	pd.deadline = clock.Now().Add(p.timeout)
	// Stamp the record now, as sarama would when batching it, so that a
	// successful send reports the timestamp the broker stored (the
	// portable producer stamped it already).
	ts := r.Timestamp
	if ts.IsZero() {
		ts = clock.Now()
	}
	// The whole message is written, sarama's unexported fields (retries,
	// flags, sequence number) included: the slot may be reused.
	pd.msg = sarama.ProducerMessage{
		Topic:     r.Topic,
		Partition: r.Partition,
		Headers:   headers(r.Headers),
		Timestamp: ts.Truncate(time.Millisecond),
		Metadata:  pd,
	}
	m := &pd.msg
	// The encoders live in the slot: a ByteEncoder converted to the
	// Encoder interface would be an allocation per key and value.
	if r.Key != nil {
		pd.key = r.Key
		m.Key = &pd.key
	}
	if r.Value != nil {
		pd.value = r.Value
		m.Value = &pd.value
	}

	ap := p.ap.Load()
	if ap == nil {
		p.amu.Lock()
		if ap = p.ap.Load(); ap == nil {
			pd.c.keep.Store(true) // waiting refers to pd after delivery
			pd.stop = context.AfterFunc(ctx, func() { p.unwait(pd, ctx.Err()) })
			p.waiting = append(p.waiting, pd)
			p.startLocked()
			p.amu.Unlock()
			p.mu.RUnlock()
			return
		}
		p.amu.Unlock()
	}
	// Delivered is never called with mu held: a callback may call Close.
	pd.ctx = ctx
	f := &p.feed
	var err error
	f.mu.Lock()
	for len(f.q) >= feedMax && !f.stopped {
		if f.space == nil {
			f.space = make(chan struct{})
		}
		space := f.space
		f.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			err = ctx.Err()
		case <-p.closing:
			err = errClosed
		}
		if err != nil {
			p.mu.RUnlock()
			p.deliver(pd, err)
			return
		}
		f.mu.Lock()
	}
	if f.stopped {
		f.mu.Unlock()
		p.mu.RUnlock()
		p.deliver(pd, errClosed)
		return
	}
	f.q = append(f.q, pd)
	kick := f.idle
	f.idle = false
	f.mu.Unlock()
	p.mu.RUnlock()
	if kick {
		select {
		case f.kick <- struct{}{}:
		default: // a kick is pending already
		}
	}
}

// feeder hands the queued records to sarama's Input in order, each with a
// plain blocking send (see feed), until Close starts; then it fails the
// records still queued and closes sarama's producer.
func (p *producer) feeder(ap sarama.AsyncProducer) {
	f := &p.feed
	in := ap.Input()
	var batch []*pending
	for {
		f.mu.Lock()
		for len(f.q) == 0 && !p.isClosing() {
			f.idle = true
			f.mu.Unlock()
			select {
			case <-f.kick:
			case <-p.closing:
			}
			f.mu.Lock()
		}
		if p.isClosing() {
			f.stopped = true
			batch = append(batch[:0], f.q...)
			f.q = nil
			if f.space != nil {
				close(f.space)
				f.space = nil
			}
			f.mu.Unlock()
			for _, pd := range batch {
				p.deliver(pd, errClosed)
			}
			ap.AsyncClose()
			return
		}
		batch, f.q = f.q, batch[:0]
		if f.space != nil {
			close(f.space)
			f.space = nil
		}
		f.mu.Unlock()
		for i, pd := range batch {
			if p.isClosing() {
				for _, pd := range batch[i:] {
					p.deliver(pd, errClosed)
				}
				break
			}
			// pd may be delivered and reused as soon as sarama has it:
			// read nothing of it after the send.
			if err := pd.ctx.Err(); err != nil {
				p.deliver(pd, err)
				continue
			}
			in <- &pd.msg
		}
		clear(batch)
	}
}

// isClosing reports whether Close has started.
func (p *producer) isClosing() bool {
	select {
	case <-p.closing:
		return true
	default:
		return false
	}
}

// headers converts a record's headers to sarama's (nil for none).
func headers(hs []polykafka.Header) []sarama.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	out := make([]sarama.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
	}
	return out
}

func (p *producer) readSuccesses(ap sarama.AsyncProducer) {
	defer p.drained.Done()
	for m := range ap.Successes() {
		pd, ok := m.Metadata.(*pending)
		if !ok {
			continue // produced natively through As
		}
		p.deliverOK(pd, m)
	}
}

func (p *producer) readErrors(ap sarama.AsyncProducer) {
	defer p.drained.Done()
	for pe := range ap.Errors() {
		pd, ok := pe.Msg.Metadata.(*pending)
		if !ok {
			p.log.Warn("sarama: a record produced through As failed", "topic", pe.Msg.Topic, "err", pe.Err)
			continue
		}
		if time.Now().Before(pd.deadline) {
			// sarama has no delivery timeout: it fails a record at once
			// when it cannot find the partition's leader (during an
			// outage: "client has run out of available brokers", then
			// its circuit breaker's "circuit breaker is open" for 10s),
			// and after Retry.Max retries otherwise. Reported as such;
			// the portable producer decides whether to produce it again
			// (driver.EarlyFailure).
			p.deliver(pd, &driver.EarlyFailure{Err: p.staleEpoch(pe.Err), Deadline: pd.deadline, Backoff: p.backoff})
			continue
		}
		p.deliver(pd, pe.Err)
	}
}

// staleEpoch translates the broker's INVALID_PRODUCER_EPOCH on a batch of
// an idempotent producer that is not transactional: sarama raises the
// producer's epoch itself when it fails a batch that carried sequence
// numbers (async_producer.go bumpIdempotentProducerEpoch, KIP-360's
// client-side bump), and the batches still in flight under the old epoch
// are then refused, not written. Nothing is fenced, so it is Unavailable:
// the record can be produced again under the new epoch. On a
// transactional producer the error stays what it is (Fenced).
func (p *producer) staleEpoch(err error) error {
	if p.idempotent && !p.transactional && errors.Is(err, sarama.ErrInvalidProducerEpoch) {
		return polykafka.NewError(polykafka.Unavailable, "sarama: produce",
			"refused under the epoch sarama abandoned after a failed batch; not written", err)
	}
	return err
}

// deliver calls Delivered once for pd, with err.
func (p *producer) deliver(pd *pending, err error) {
	if !pd.fired.CompareAndSwap(false, true) {
		return
	}
	p.finish(pd, err, true)
}

// deliverHeld is deliver for a record sarama may still hold (Close gave
// up on it): its slot is left as it is, for sarama to read (no slot is
// reused after Close).
func (p *producer) deliverHeld(pd *pending, err error) {
	if !pd.fired.CompareAndSwap(false, true) {
		return
	}
	p.finish(pd, err, false)
}

// deliverOK calls Delivered once for pd, as a success that m reports.
func (p *producer) deliverOK(pd *pending, m *sarama.ProducerMessage) {
	if !pd.fired.CompareAndSwap(false, true) {
		return
	}
	pd.r.Partition, pd.r.Offset, pd.r.Timestamp = m.Partition, m.Offset, m.Timestamp
	p.finish(pd, nil, true)
}

// finish calls Delivered for pd. With scrub (sarama is done with the
// record, or never had it), the slot keeps nothing of the caller's: it may
// wait on the free list for long, and the value may be large, the context
// carry values.
func (p *producer) finish(pd *pending, err error, scrub bool) {
	r, done := pd.r, pd.done
	pd.r, pd.done = nil, nil
	if scrub {
		pd.ctx, pd.key, pd.value, pd.msg.Headers = nil, nil, nil, nil
	}
	p.delivered(r, err, done)
	p.release(pd.c)
}

// Flush implements driver.Producer. sarama has no flush call: it sends what
// it buffers within Producer.Flush.Frequency on its own.
func (p *producer) Flush(context.Context) error { return nil }

// Refresh implements driver.Producer: sarama's partitioner reads the
// client's metadata, refreshed here.
func (p *producer) Refresh(ctx context.Context, counts map[string]int32) error {
	if p.isClosed() {
		return errClosed
	}
	topics := make([]string, 0, len(counts))
	for t := range counts {
		topics = append(topics, t)
	}
	return p.calls.do(ctx, func() error { return p.client.RefreshMetadata(topics...) })
}

// Idempotent implements driver.Producer.
func (p *producer) Idempotent() bool { return p.idempotent }

func (p *producer) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// Close implements driver.Producer. sarama's AsyncClose sends what is
// buffered and then closes Successes and Errors; if ctx ends first, the
// records still pending are failed here and the client is closed under
// sarama, which makes it fail the rest (their results are then ignored).
func (p *producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { close(p.closing) })
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	var err error
	p.amu.Lock()
	a := p.att
	ws := p.waiting
	p.waiting = nil
	p.amu.Unlock()
	for _, pd := range ws {
		pd.stop()
		p.deliver(pd, errClosed)
	}
	// sarama's producer, once created, is closed by the feeder (see feed)
	// after its send in progress: an attempt that succeeds after this
	// point starts a feeder that finds Close started.
	creating := false
	if a != nil {
		select {
		case <-a.done:
		default:
			// Still creating: sarama retries InitProducerId for up to
			// Transaction.Retry.Max x Backoff (5s by default). The
			// records produced meanwhile were waiting and failed above;
			// close the client under the attempt rather than wait.
			creating = true
		}
	}
	if a != nil && !creating {
		// The attempt is over: no reader is added after this point.
		drained := make(chan struct{})
		go func() {
			p.drained.Wait()
			close(drained)
		}()
		select {
		case <-drained:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	// After sarama drained, the records left are, on error, those sarama
	// never reported.
	{
		var left []*pending
		p.cmu.Lock()
		for c := range p.chunks {
			for i := range min(c.next.Load(), pendingChunk) {
				if pd := &c.ps[i]; !pd.fired.Load() {
					left = append(left, pd)
				}
			}
		}
		p.cmu.Unlock()
		for _, pd := range left {
			p.deliverHeld(pd, fmt.Errorf("%w before sarama delivered the record", errClosed))
		}
	}
	// A record delivered by another goroutine (sarama's readers when Close
	// gave up on them, the goroutine creating sarama's producer, the
	// feeder) may still be in its Delivered: wait for every slot to be
	// released, so that every callback has returned when Close does.
	for !p.allReleased() {
		select {
		case <-p.settled:
			continue
		case <-ctx.Done():
		}
		break
	}
	if cerr := p.client.Close(); cerr != nil && err == nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = cerr
	}
	p.calls.wait(ctx)
	p.unlog()
	return err
}

// As implements driver.Producer.
func (p *producer) As(target any) bool {
	switch t := target.(type) {
	case *sarama.Client:
		if t != nil {
			*t = p.client
			return true
		}
	case *sarama.AsyncProducer:
		// Waits for sarama's producer to be created (see attempt).
		if t != nil {
			if ap, err := p.get(context.Background()); err == nil {
				*t = ap
				return true
			}
		}
	}
	return false
}

// BeginTransaction implements driver.Transactor.
func (t txnProducer) BeginTransaction(ctx context.Context) error {
	ap, err := t.get(ctx)
	if err != nil {
		return err
	}
	return t.calls.do(ctx, ap.BeginTxn)
}

// SendOffsets implements driver.Transactor.
func (t txnProducer) SendOffsets(ctx context.Context, group driver.GroupMetadata, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	byTopic := make(map[string][]*sarama.PartitionOffsetMetadata)
	for tp, o := range offsets {
		meta := o.Metadata
		byTopic[tp.Topic] = append(byTopic[tp.Topic], &sarama.PartitionOffsetMetadata{
			Partition: tp.Partition, Offset: o.Offset, LeaderEpoch: -1, Metadata: &meta,
		})
	}
	gm := &sarama.ConsumerGroupMetadata{GroupID: group.Group, GenerationID: group.Generation, MemberID: group.MemberID}
	if group.InstanceID != "" {
		id := group.InstanceID
		gm.GroupInstanceID = &id
	}
	ap, err := t.get(ctx)
	if err != nil {
		return err
	}
	return t.calls.do(ctx, func() error { return ap.AddOffsetsToTxnWithGroupMetadata(byTopic, gm) })
}

// EndTransaction implements driver.Transactor.
func (t txnProducer) EndTransaction(ctx context.Context, commit bool) error {
	ap, err := t.get(ctx)
	if err != nil {
		return err
	}
	if commit {
		return t.calls.do(ctx, ap.CommitTxn)
	}
	return t.calls.do(ctx, ap.AbortTxn)
}

// partitioner is sarama's murmur2 partitioner (Kafka's Java default
// partitioner for keyed records, which driver.KeyPartition defines), except
// that a record produced by the adapter with its own partition goes there.
type partitioner struct {
	inner sarama.DynamicConsistencyPartitioner
}

func newPartitioner(topic string) sarama.Partitioner {
	return partitioner{inner: sarama.NewMurmur2Partitioner(topic).(sarama.DynamicConsistencyPartitioner)}
}

func manualPartition(m *sarama.ProducerMessage) bool {
	pd, ok := m.Metadata.(*pending)
	return ok && pd.manual
}

// Partition implements sarama.Partitioner.
func (pt partitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if manualPartition(m) {
		if m.Partition >= n {
			return -1, fmt.Errorf("%w: record partition %d of %d", sarama.ErrInvalidPartition, m.Partition, n)
		}
		return m.Partition, nil
	}
	return pt.inner.Partition(m, n)
}

// RequiresConsistency implements sarama.Partitioner.
func (pt partitioner) RequiresConsistency() bool { return true }

// MessageRequiresConsistency implements sarama.DynamicConsistencyPartitioner:
// keyed and manually placed records must reach their partition even while
// it is unavailable; others may go to any available partition.
func (pt partitioner) MessageRequiresConsistency(m *sarama.ProducerMessage) bool {
	return manualPartition(m) || pt.inner.MessageRequiresConsistency(m)
}
