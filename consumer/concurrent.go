package consumer

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// Ordering says which records Run and RunBatch keep in order when
// Options.Concurrency is above 1. Whatever the ordering, a partition's
// commit moves only over its contiguous processed prefix.
type Ordering int

const (
	// ByPartition (the default) hands one partition's records to the
	// handler one at a time, in offset order; partitions run in parallel.
	ByPartition Ordering = iota
	// ByKey hands one key's records of a partition to the handler one at
	// a time, in offset order; distinct keys run in parallel, within a
	// partition too. Records with a nil key and records with an empty key
	// are one key per partition: they stay in order with each other (use
	// Unordered if they need not). RunBatch has no per-key batches: with
	// ByKey it orders by partition.
	ByKey
	// Unordered hands records to the handler as soon as a handler slot is
	// free, in no particular order.
	Unordered
)

// String returns "ByPartition", "ByKey" or "Unordered".
func (o Ordering) String() string {
	switch o {
	case ByPartition:
		return "ByPartition"
	case ByKey:
		return "ByKey"
	case Unordered:
		return "Unordered"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// track is the bookkeeping of one assigned partition's records handed out
// and not yet past the commit point: the offset of each record in offset
// order, and which are done. The partition's processed offset moves only
// over the contiguous done prefix. Records are numbered in the order they
// are added, so that a worker reports a finished record without a search.
// Guarded by the engine's mutex (Poll's tracks by Consumer.mu).
type track struct {
	ps       *partState
	ctx      context.Context // the handlers' context: cancelled when the partition is lost
	cancel   context.CancelFunc
	offs     []int64 // offset of each record; offs[head:] are not committed yet
	done     []bool
	head     int
	base     int64 // the number of the record at offs[0]
	open     int   // records added and not done
	inflight int   // units taken by a worker and not yet reported
	draining bool
	halt     atomic.Bool // draining, lost or stopping: no further record of the partition goes to a handler
	lane     *lane       // the engine's lane of the partition (ByPartition, RunBatch)
	salt     uint64      // mixed into the partition's laneKeys (ByKey)
}

func newTrack(ctx context.Context, ps *partState) *track {
	t := &track{ps: ps}
	t.ctx, t.cancel = context.WithCancel(ctx)
	context.AfterFunc(t.ctx, func() { t.halt.Store(true) })
	return t
}

// add registers a record at offset off, handed out after every record
// added before it, and returns its number.
func (t *track) add(off int64) int64 {
	if n := len(t.offs); n > t.head && t.offs[n-1] >= off {
		// The fetch position moved back (a seek after out-of-range):
		// what was handed out before is of the old position. Its
		// numbers fall below base: finishing them does nothing.
		t.base += int64(n)
		t.offs, t.done, t.head, t.open = t.offs[:0], t.done[:0], 0, 0
	}
	t.offs = append(t.offs, off)
	t.done = append(t.done, false)
	t.open++
	return t.base + int64(len(t.offs)-1)
}

// addRun registers the consecutive records of run and returns the number
// of the first.
func (t *track) addRun(run []polykafka.Record) int64 {
	num := t.add(run[0].Offset)
	for i := 1; i < len(run); i++ {
		t.add(run[i].Offset)
	}
	return num
}

// finishN marks the n records numbered from num done and moves the
// partition's processed offset over the contiguous done prefix.
func (t *track) finishN(num int64, n int) {
	i := num - t.base
	for j := max(i, int64(t.head)); j < min(i+int64(n), int64(len(t.offs))); j++ {
		if !t.done[j] {
			t.done[j] = true
			t.open--
		}
	}
	next := int64(-1)
	for t.head < len(t.offs) && t.done[t.head] {
		next = t.offs[t.head] + 1
		t.head++
	}
	if next >= 0 && next > t.ps.processed.Load() {
		t.ps.processed.Store(next)
	}
	if t.head == len(t.offs) {
		t.base += int64(len(t.offs))
		t.offs, t.done, t.head = t.offs[:0], t.done[:0], 0
	} else if t.head >= 1024 && 2*t.head >= len(t.offs) {
		n := copy(t.offs, t.offs[t.head:])
		copy(t.done, t.done[t.head:])
		t.base += int64(t.head)
		t.offs, t.done, t.head = t.offs[:n], t.done[:n], 0
	}
}

// finish marks the record at offset off done (Poll's Mark) and reports
// whether it was open.
func (t *track) finish(off int64) bool {
	i, ok := slices.BinarySearch(t.offs[t.head:], off)
	if !ok || t.done[t.head+i] {
		return false
	}
	t.finishN(t.base+int64(t.head+i), 1)
	return true
}

// unit is records of one partition that a worker takes at once: a run of
// consecutive records (ByPartition, Unordered), one record (ByKey), or a
// RunBatch batch (never split).
type unit struct {
	tr   *track
	recs []polykafka.Record
	num  int64 // the track's number of recs[0]
	lane *lane // the lane it waits in, and goes back to if handed back
	buf  *fetchBuf
}

// fetchBuf is the record buffer of one fetch: it is reused for a later
// fetch once every record submitted from it is reported (Run's handler got
// its records by value; RunBatch's may not keep its slice).
type fetchBuf struct {
	recs []polykafka.Record
	refs int // records of it not yet reported, plus one while the fetch loop delivers it
}

// laneKey names what stays in order with ByKey: one key of a partition,
// as a 64-bit hash of the key xor a random salt of the partition's track.
// Two keys whose laneKeys collide (odds of 2^-64) share a lane: a stricter
// order, never a looser one.
type laneKey uint64

// laneTable holds the ByKey lanes that have a unit queued or in a
// handler, by laneKey: open addressing with linear probing and
// backward-shift deletion, at most half full. A lane is added and removed
// per record when keys are distinct; a Go map under that churn cost about
// 75 ns a lookup in the profile of BenchmarkConcurrentNoop, this table a
// fraction of it. Key 0 marks a free slot.
type laneTable struct {
	keys  []laneKey
	lanes []*lane
	n     int
}

func (t *laneTable) get(k laneKey) *lane {
	if t.n == 0 {
		return nil
	}
	m := len(t.keys) - 1
	for i := int(k) & m; ; i = (i + 1) & m {
		switch t.keys[i] {
		case k:
			return t.lanes[i]
		case 0:
			return nil
		}
	}
}

// put adds k, which is not in t.
func (t *laneTable) put(k laneKey, l *lane) {
	if 2*(t.n+1) > len(t.keys) {
		old, oldLanes := t.keys, t.lanes
		t.keys = make([]laneKey, max(64, 2*len(old)))
		t.lanes = make([]*lane, len(t.keys))
		t.n = 0
		for i, ok := range old {
			if ok != 0 {
				t.put(ok, oldLanes[i])
			}
		}
	}
	m := len(t.keys) - 1
	i := int(k) & m
	for t.keys[i] != 0 {
		i = (i + 1) & m
	}
	t.keys[i], t.lanes[i] = k, l
	t.n++
}

// del removes k, which is in t, and moves the entries after it that
// probed past its slot back, so that no probe sequence has a hole.
func (t *laneTable) del(k laneKey) {
	m := len(t.keys) - 1
	i := int(k) & m
	for t.keys[i] != k {
		i = (i + 1) & m
	}
	for j := (i + 1) & m; t.keys[j] != 0; j = (j + 1) & m {
		h := int(t.keys[j]) & m
		// The entry at j stays if its home h lies cyclically in (i, j].
		if (i < j && i < h && h <= j) || (i > j && (h > i || h <= j)) {
			continue
		}
		t.keys[i], t.lanes[i] = t.keys[j], t.lanes[j]
		i = j
	}
	t.keys[i], t.lanes[i] = 0, nil
	t.n--
}

// lane queues the units that wait for the one in a handler to finish: a
// partition's (ByPartition, RunBatch), a key's (ByKey), or, shared by every
// worker and never busy, the one lane of Unordered.
type lane struct {
	lk     laneKey
	q      []unit // q[qh:] wait, in order
	qh     int
	busy   bool // a worker holds units of it: none of the others goes to a handler
	ready  bool // in engine.ready
	mapped bool // in engine.lanes
	shared bool
}

// takeBatch is what a worker took at once: units, the lanes they came
// from (first[i]: the index of lanes[i]'s first unit), and per unit how
// many of its records were processed (-1: skipped when taken, not counted
// in flight).
//
// The worker claims each unit before its handler call by moving next
// from i to i+1. A batch whose worker is stuck in one handler call (next
// unchanged for a rescue period) while other workers idle has its
// unclaimed units handed back to their lanes by the rescuer, which sets
// handedBack in next (the worker's next claim fails) and cut to where the
// batch now ends.
type takeBatch struct {
	units []unit
	lanes []*lane
	first []int
	done  []int
	next  atomic.Int64
	from  int   // units[:from] were reported by the rescuer; guarded by engine.mu
	cut   int   // units[:cut] are the worker's; guarded by engine.mu
	seen  int64 // next at the rescuer's last look; guarded by engine.mu
}

// handedBack is set in takeBatch.next when the rescuer took the unclaimed
// units back.
const handedBack = 1 << 40

// rescuePeriod is how often the rescuer looks for a worker stuck in one
// handler call with unclaimed units of its batch while other workers idle:
// a record behind a stuck one waits at most about two periods for a free
// worker.
const rescuePeriod = 2 * time.Millisecond

// minBatch is about how long a worker's take of records lasts, by the
// handler's measured time per record: long enough that the hand-off (a
// lock, maybe a wake-up, the report) costs little next to a fast handler;
// a handler slower than minBatch gets one record (or unit) per take, so
// that records queue for free workers and not behind a slow one.
const minBatch = 100 * time.Microsecond

// engine runs Run's and RunBatch's handler calls on Concurrency workers,
// in the order Options.Ordering keeps, holding at most
// Options.MaxBufferedRecords records. The fetch loop submits units to
// lanes; a lane in order is held by one worker at a time; a worker takes
// the units of ready lanes in batches sized by the handler's measured
// speed, calls the handler for each record, and reports the batch under
// one lock. A partition's processed offset moves only over its contiguous
// done prefix (track.finishN).
type engine struct {
	c       *Consumer
	call    func(ctx context.Context, tr *track, recs []polykafka.Record) (processed int, err error)
	byKey   bool
	batches bool
	limit   int
	maxTake int
	seed    maphash.Seed

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	work    *sync.Cond // ready lanes, or stopping
	room    *sync.Cond // held fell to the low mark, a draining partition went idle, or stopping
	ready   []*lane
	rhead   int
	lanes   laneTable
	shared  *lane
	free    []*lane              // ByKey lanes for reuse
	cur     *fetchBuf            // the buffer of the fetch being delivered
	bufs    [][]polykafka.Record // buffers for reuse
	tracks  map[*partState]*track
	held    int
	active  map[*takeBatch]struct{} // batches taken and not reported
	idle    int                     // workers waiting for work
	waking  int                     // workers signalled and not yet awake
	cost    float64                 // handler time per record, ns (moving average; 0: not measured yet)
	stopped bool

	paused []polykafka.TopicPartition // partitions the fetch loop paused; its own
	wg     sync.WaitGroup
}

func (c *Consumer) newEngine(batches bool, call func(context.Context, *track, []polykafka.Record) (int, error)) *engine {
	e := &engine{
		c:       c,
		call:    call,
		byKey:   c.s.Ordering == ByKey && !batches,
		batches: batches,
		limit:   c.s.MaxBufferedRecords,
		maxTake: max(1, c.s.MaxBufferedRecords/4),
		seed:    maphash.MakeSeed(),
		shared:  &lane{shared: true},
		tracks:  make(map[*partState]*track),
		active:  make(map[*takeBatch]struct{}),
	}
	e.work = sync.NewCond(&e.mu)
	e.room = sync.NewCond(&e.mu)
	return e
}

// start starts the workers; their handlers' contexts derive from ctx.
func (e *engine) start(ctx context.Context) {
	e.ctx, e.cancel = context.WithCancel(ctx)
	context.AfterFunc(e.ctx, e.wake)
	for range e.c.s.Concurrency {
		e.wg.Add(1)
		go e.worker()
	}
	e.wg.Add(1)
	go e.rescuer()
	e.c.eng.Store(e)
}

// wake wakes every waiter so that it sees the engine stopping.
func (e *engine) wake() {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.work.Broadcast()
	e.room.Broadcast()
}

// stop cancels the handlers, waits for the workers to return and resumes
// what the fetch loop paused. Records not handed to a handler are dropped:
// they were not processed, so nothing of them is committed.
func (e *engine) stop() {
	e.cancel()
	e.wake()
	e.wg.Wait()
	e.c.eng.CompareAndSwap(e, nil)
	e.mu.Lock()
	for _, tr := range e.tracks {
		tr.cancel()
	}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
	defer cancel()
	e.resume(ctx)
}

// submit queues run (consecutive records of the partition of ps, at or
// after its start): for RunBatch as one unit; for Run as one unit in the
// partition's lane (ByPartition) or the shared lane (Unordered), or one
// unit per record in its key's lane (ByKey).
func (e *engine) submit(ps *partState, run []polykafka.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tr := e.tracks[ps]
	if tr == nil {
		tr = newTrack(e.ctx, ps)
		tr.salt = rand.Uint64()
		e.tracks[ps] = tr
	}
	num := tr.addRun(run)
	e.held += len(run)
	fb := e.cur
	if fb != nil {
		fb.refs += len(run)
	}
	switch {
	case e.byKey:
		for i := range run {
			lk := laneKey(maphash.Bytes(e.seed, run[i].Key) ^ tr.salt)
			if lk == 0 {
				lk = 1 // 0 marks a free slot of the lane table
			}
			l := e.lanes.get(lk)
			if l == nil {
				l = e.newLane(lk)
			}
			e.enqueue(l, unit{tr: tr, recs: run[i : i+1 : i+1], num: num + int64(i), lane: l, buf: fb})
		}
	case e.c.s.Ordering == Unordered:
		e.enqueue(e.shared, unit{tr: tr, recs: run, num: num, lane: e.shared, buf: fb})
	default:
		if tr.lane == nil {
			tr.lane = &lane{}
		}
		e.enqueue(tr.lane, unit{tr: tr, recs: run, num: num, lane: tr.lane, buf: fb})
	}
}

// buffer returns a buffer for the next fetch (nil: none free).
func (e *engine) buffer() []polykafka.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.bufs)
	if n == 0 {
		return nil
	}
	buf := e.bufs[n-1]
	e.bufs[n-1] = nil
	e.bufs = e.bufs[:n-1]
	return buf
}

// fetched makes recs, just fetched, the buffer the next submits come
// from; delivered ends that. Called by the fetch loop.
func (e *engine) fetched(recs []polykafka.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur = nil
	if cap(recs) > 0 {
		e.cur = &fetchBuf{recs: recs[:0], refs: 1}
	}
}

func (e *engine) delivered() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		e.unref(e.cur, 1)
		e.cur = nil
	}
}

// unref drops n references to fb; at none its records are free for a
// later fetch. Called with mu held.
func (e *engine) unref(fb *fetchBuf, n int) {
	fb.refs -= n
	if fb.refs == 0 && len(e.bufs) < 16 {
		// Keep the array, not what its records point to: a spare buffer
		// would otherwise hold a whole fetch of keys and values alive
		// until a later fetch overwrote it.
		recs := fb.recs[:cap(fb.recs)]
		clear(recs)
		e.bufs = append(e.bufs, recs[:0])
	}
}

// newLane returns an empty lane of lk, registered in lanes. Called with
// mu held.
func (e *engine) newLane(lk laneKey) *lane {
	var l *lane
	if n := len(e.free); n > 0 {
		l, e.free = e.free[n-1], e.free[:n-1]
	} else {
		l = &lane{}
	}
	l.lk, l.mapped = lk, true
	e.lanes.put(lk, l)
	return l
}

// share is one partition's share of MaxBufferedRecords. Called with mu
// held.
func (e *engine) share() int {
	e.c.mu.Lock()
	n := len(e.c.parts)
	e.c.mu.Unlock()
	return max(1, e.limit/max(n, 1))
}

// enqueue appends u to l and makes l ready unless a worker holds it.
// Called with mu held.
func (e *engine) enqueue(l *lane, u unit) {
	l.q = append(l.q, u)
	if !l.busy && !l.ready {
		e.push(l)
		e.wakeOne()
	}
}

// push makes l ready for a worker. Called with mu held.
func (e *engine) push(l *lane) {
	l.ready = true
	e.ready = append(e.ready, l)
}

// wakeOne wakes an idle worker unless one is already on its way: a woken
// worker that leaves work behind wakes the next (take), so a fast handler
// keeps few workers busy. A handler slower than minBatch takes one record
// at a time: then every record queued wakes a worker of its own, as the
// chain would wake them one after another. Called with mu held.
func (e *engine) wakeOne() {
	if e.idle > e.waking && (e.waking == 0 || e.cost >= float64(minBatch)) {
		e.waking++
		e.work.Signal()
	}
}

// target is how many records a worker takes at once: minBatch's worth at
// the handler's measured speed, one while it is not measured, at most a
// quarter of MaxBufferedRecords. Called with mu held.
func (e *engine) target() int {
	if e.cost <= 0 {
		return 1
	}
	return int(max(1, min(float64(e.maxTake), float64(minBatch)/e.cost)))
}

// take moves units of ready lanes into b, up to target records (at least
// one unit; a run is split, a RunBatch batch never). A lane in order stays
// held by this worker until the batch is reported. Called with mu held.
func (e *engine) take(b *takeBatch) {
	target, taken := e.target(), 0
	for taken < target && e.rhead < len(e.ready) {
		l := e.ready[e.rhead]
		e.ready[e.rhead] = nil
		e.rhead++
		l.ready = false
		l.busy = !l.shared
		first := len(b.units)
		for l.qh < len(l.q) && taken < target {
			u := &l.q[l.qh]
			k := target - taken
			if l.shared {
				k = 1 // unordered: each record can be handed back on its own
			}
			if !e.batches && len(u.recs) > k {
				b.units = append(b.units, unit{tr: u.tr, recs: u.recs[:k:k], num: u.num, lane: l, buf: u.buf})
				u.recs, u.num = u.recs[k:], u.num+int64(k)
				taken += k
				continue
			}
			b.units = append(b.units, *u)
			taken += len(u.recs)
			*u = unit{}
			l.qh++
		}
		if l.qh == len(l.q) {
			l.q, l.qh = l.q[:0], 0
		}
		b.lanes = append(b.lanes, l)
		b.first = append(b.first, first)
		if l.shared && l.qh < len(l.q) {
			e.push(l)
		}
	}
	if e.rhead == len(e.ready) {
		e.ready, e.rhead = e.ready[:0], 0
	} else if e.rhead >= 1024 && 2*e.rhead >= len(e.ready) {
		n := copy(e.ready, e.ready[e.rhead:])
		clear(e.ready[n:])
		e.ready, e.rhead = e.ready[:n], 0
	}
	for _, u := range b.units {
		if u.tr.halt.Load() || u.tr.ps.gone.Load() {
			b.done = append(b.done, -1) // not processed
			continue
		}
		u.tr.inflight++
		b.done = append(b.done, 0)
	}
	b.next.Store(0)
	b.from, b.cut, b.seen = 0, len(b.units), -1
	e.active[b] = struct{}{}
}

func (e *engine) worker() {
	defer e.wg.Done()
	var b takeBatch
	e.mu.Lock()
	for {
		for e.rhead == len(e.ready) && !e.stopped {
			e.idle++
			e.work.Wait()
			e.idle--
			if e.waking > 0 {
				e.waking--
			}
		}
		if e.stopped {
			e.mu.Unlock()
			return
		}
		e.take(&b)
		if e.rhead < len(e.ready) {
			e.wakeOne()
		}
		e.mu.Unlock()

		start := time.Now()
		n, failed := e.run(&b)
		elapsed := time.Since(start)

		e.mu.Lock()
		if n > 0 {
			per := float64(elapsed) / float64(n)
			if e.cost <= 0 {
				e.cost = per
			} else {
				e.cost += (per - e.cost) / 8
			}
		}
		e.report(&b)
		if failed != nil {
			// The consumer stopped (the error is sticky in c.failed):
			// end the fetch loop and the other handlers.
			e.mu.Unlock()
			e.c.stopWith(failed)
			e.cancel()
			e.mu.Lock()
		}
	}
}

// run calls the handler for the units of b, in order, until one fails for
// good or its partition halts; it returns the records processed and the
// failure.
func (e *engine) run(b *takeBatch) (n int, failed error) {
	for i, u := range b.units {
		if !b.next.CompareAndSwap(int64(i), int64(i+1)) {
			return n, failed // the rest was handed back
		}
		if b.done[i] < 0 || failed != nil || u.tr.halt.Load() || u.tr.ps.gone.Load() {
			continue
		}
		b.done[i], failed = e.call(u.tr.ctx, u.tr, u.recs)
		n += b.done[i]
	}
	return n, failed
}

// report finishes what b processed, releases the records it held and the
// lanes it kept, and empties b. Called with mu held.
func (e *engine) report(b *takeBatch) {
	delete(e.active, b)
	e.finishUnits(b, b.cut)
	for k, l := range b.lanes {
		if l == nil || l.shared || !l.busy || b.first[k] >= b.cut {
			continue // released by the rescuer
		}
		e.release(l)
	}
	clear(b.units)
	clear(b.lanes)
	b.units, b.lanes, b.first, b.done = b.units[:0], b.lanes[:0], b.first[:0], b.done[:0]
}

// finishUnits reports the units of b from b.from up to upto: their
// processed records are finished, their records no longer held. Called
// with mu held.
func (e *engine) finishUnits(b *takeBatch, upto int) {
	low := e.limit / 2
	before := e.held
	for i := b.from; i < upto; i++ {
		u := b.units[i]
		tr := u.tr
		if d := b.done[i]; d >= 0 {
			tr.inflight--
			if d > 0 {
				tr.finishN(u.num, d)
			}
			if tr.draining && tr.inflight == 0 {
				e.room.Broadcast()
			}
		}
		e.held -= len(u.recs)
		if u.buf != nil {
			e.unref(u.buf, len(u.recs))
		}
	}
	if before > low && e.held <= low {
		e.room.Broadcast()
	}
	b.from = upto
}

// release ends a worker's hold of the lane l in order: it is ready again
// if units wait in it (the caller goes on taking, or wakes a worker), or
// else forgotten. Called with mu held.
func (e *engine) release(l *lane) {
	l.busy = false
	switch {
	case l.qh < len(l.q):
		e.push(l)
	case l.mapped:
		e.lanes.del(l.lk)
		l.mapped = false
		if len(e.free) < e.limit {
			e.free = append(e.free, l)
		}
	}
}

// rescuer hands back, every rescuePeriod, the unclaimed units of batches
// whose worker is stuck in one handler call while other workers idle, so
// that a slow record holds back only the records of its own lane.
func (e *engine) rescuer() {
	defer e.wg.Done()
	t := time.NewTicker(rescuePeriod)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		for b := range e.active {
			raw := b.next.Load()
			n := raw &^ handedBack
			stuck := n == b.seen
			b.seen = n
			if !stuck {
				continue
			}
			if n >= 2 && int64(b.from) < n-1 {
				// What the worker finished before the call it is stuck
				// in is reported now, not when that call returns.
				e.reportDone(b, int(n-1))
			}
			if raw&handedBack == 0 && e.idle > 0 && n < int64(b.cut) && b.next.CompareAndSwap(n, n|handedBack) {
				e.handBack(b, int(n))
			}
		}
		e.mu.Unlock()
	}
}

// reportDone reports the units of b before upto, which its worker
// finished (their counts in done were written before it claimed the unit
// at upto), and releases the lanes in order that have no unit left in b.
// Called with mu held.
func (e *engine) reportDone(b *takeBatch, upto int) {
	e.finishUnits(b, upto)
	for k, l := range b.lanes {
		end := b.cut
		if k+1 < len(b.lanes) {
			end = b.first[k+1]
		}
		if end > upto {
			break
		}
		if l != nil && !l.shared && l.busy {
			e.release(l)
			b.lanes[k] = nil
		}
	}
	e.wakeOne()
}

// handBack returns the units of b from cut on, which its worker will not
// run, to the front of their lanes, in order. A lane that has no unit left
// in b is released; one that has stays held until b is reported, so that
// its order holds. Called with mu held.
func (e *engine) handBack(b *takeBatch, cut int) {
	for j := len(b.units) - 1; j >= cut; j-- {
		u := b.units[j]
		if b.done[j] >= 0 {
			u.tr.inflight--
			if u.tr.draining && u.tr.inflight == 0 {
				e.room.Broadcast()
			}
		}
		l := u.lane
		if l.qh > 0 {
			l.qh--
			l.q[l.qh] = u
		} else {
			l.q = slices.Insert(l.q, 0, u)
		}
	}
	b.cut = cut
	for k, l := range b.lanes {
		if l == nil || (!l.shared && b.first[k] < cut) {
			continue
		}
		l.busy = false
		if !l.ready && l.qh < len(l.q) {
			e.push(l)
		}
	}
	e.wakeOne()
}

// roomFor waits, while the engine holds MaxBufferedRecords records, for
// half of them to be processed. Fetching stops meanwhile, and after
// pauseAfter the assigned partitions are paused too, so that the client
// does not go on filling its own buffers under a slow handler; a fast
// handler frees the room sooner, without a pause and resume. It returns
// how many records the next fetch may return (0: stopping).
func (e *engine) roomFor(ctx context.Context) int {
	e.mu.Lock()
	if e.held >= e.limit && !e.stopped {
		if !e.waitRoom(pauseAfter) {
			e.mu.Unlock()
			e.pause(ctx)
			e.mu.Lock()
			e.waitRoom(0)
			e.mu.Unlock()
			e.resume(ctx)
			e.mu.Lock()
		}
	}
	// At most a share per fetch (but not tiny fetches): one fetch must
	// not fill the buffer with few partitions' records.
	n, stopped := min(e.limit-e.held, max(e.share(), 64)), e.stopped
	e.mu.Unlock()
	if stopped || ctx.Err() != nil {
		return 0
	}
	return max(1, min(n, e.c.s.MaxPollRecords))
}

// pauseAfter is how long the fetch loop waits for room before it pauses
// the assigned partitions.
const pauseAfter = 20 * time.Millisecond

// waitRoom waits until the engine holds at most half of
// MaxBufferedRecords, or it stops, or (when d > 0) d passes; it reports
// whether there is room. Called with mu held.
func (e *engine) waitRoom(d time.Duration) bool {
	timedOut := false
	if d > 0 {
		t := time.AfterFunc(d, func() {
			e.mu.Lock()
			timedOut = true
			e.mu.Unlock()
			e.room.Broadcast()
		})
		defer t.Stop()
	}
	for e.held > e.limit/2 && !e.stopped && !timedOut {
		e.room.Wait()
	}
	return e.held <= e.limit/2 || e.stopped
}

// pause pauses fetching of every assigned partition the application has
// not paused itself. A backend that cannot pause is not fetched from while
// the engine is full, which bounds the engine all the same.
func (e *engine) pause(ctx context.Context) {
	p, ok := e.c.d.(driver.Pauser)
	if !ok {
		return
	}
	e.paused = e.c.autoPausable(nil)
	if len(e.paused) == 0 {
		return
	}
	if err := p.Pause(ctx, e.paused); err != nil {
		e.c.s.Logger.Debug("polykafka: pausing fetches at MaxBufferedRecords failed", "group", e.c.group, "err", err)
	}
}

// resume resumes what pause paused and is still assigned, unless the
// application paused it meanwhile.
func (e *engine) resume(ctx context.Context) {
	p, ok := e.c.d.(driver.Pauser)
	if !ok || len(e.paused) == 0 {
		return
	}
	tps := e.c.autoPausable(e.paused)
	e.paused = nil
	if len(tps) == 0 {
		return
	}
	if err := p.Resume(ctx, tps); err != nil {
		e.c.s.Logger.Debug("polykafka: resuming fetches failed", "group", e.c.group, "err", err)
	}
}

// autoPausable returns the partitions of among (nil: all assigned) that are
// assigned and not paused by the application.
func (c *Consumer) autoPausable(among []polykafka.TopicPartition) []polykafka.TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []polykafka.TopicPartition
	if among == nil {
		for tp := range c.parts {
			if !c.userPaused[tp] {
				out = append(out, tp)
			}
		}
		return out
	}
	for _, tp := range among {
		if c.parts[tp] != nil && !c.userPaused[tp] {
			out = append(out, tp)
		}
	}
	return out
}

// tracksOf returns the engine's tracks of the assigned partitions tps.
// Called with e.mu held.
func (e *engine) tracksOf(tps []polykafka.TopicPartition) []*track {
	c := e.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*track
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			if tr := e.tracks[ps]; tr != nil {
				out = append(out, tr)
			}
		}
	}
	return out
}

// drain is the revoke of tps: no further record of them is handed to a
// handler, and drain waits, at most wait, for the handlers in flight on
// them to return; then it cancels the contexts of those still running, so
// that the commit that follows covers what was processed.
func (e *engine) drain(tps []polykafka.TopicPartition, wait time.Duration) {
	e.mu.Lock()
	trs := e.tracksOf(tps)
	for _, tr := range trs {
		tr.draining = true
		tr.halt.Store(true)
	}
	timedOut := false
	t := time.AfterFunc(wait, func() {
		e.mu.Lock()
		timedOut = true
		e.mu.Unlock()
		e.room.Broadcast()
	})
	busy := func() bool {
		for _, tr := range trs {
			if tr.inflight > 0 {
				return true
			}
		}
		return false
	}
	for busy() && !timedOut && !e.stopped {
		e.room.Wait()
	}
	t.Stop()
	if timedOut && busy() {
		e.c.s.Logger.Warn("polykafka: handlers still running on revoked partitions after the wait; committing what was processed before them",
			"group", e.c.group, "partitions", tps, "waited", wait)
	}
	for _, tr := range trs {
		tr.cancel()
		delete(e.tracks, tr.ps)
	}
	e.mu.Unlock()
}

// lose is the loss of tps: the contexts of their handlers in flight are
// cancelled and no further record of them is handed out. Nothing of them
// is committed (Lost forgets them).
func (e *engine) lose(tps []polykafka.TopicPartition) {
	e.mu.Lock()
	trs := e.tracksOf(tps)
	for _, tr := range trs {
		tr.draining = true
		tr.halt.Store(true)
		tr.cancel()
		delete(e.tracks, tr.ps)
	}
	e.mu.Unlock()
}
