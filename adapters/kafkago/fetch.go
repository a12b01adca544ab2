package kafkago

// Fetching: one loop per assigned partition, each sending its own fetch
// requests (kafka.Client.Fetch), started exactly at the decided offset (no
// reset policy: kafka.Reader would jump to the log start on its own, and
// its kafka.Conn batches cannot tell a null key or value from an empty
// one). The loops hand whole fetched batches (chunks) to a bounded channel;
// Fetch drains it. Pause, Seek, revocation and a reader's Assign stop a
// partition's loop; Fetch drops the chunks of stopped loops, so a record is
// returned only while its loop is current. Resume restarts a loop at the
// first offset Fetch has not returned, Seek and Assign at their offset. A
// group member (consumer.go) and a reader without a group (reader.go) share
// all of it.

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchAPI "github.com/segmentio/kafka-go/protocol/fetch"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// partState is an assigned partition whose start was decided.
type partState struct {
	next   int64    // the next offset Fetch hands out
	run    *fetcher // the current fetch loop, nil while paused or halted
	halted bool     // out of range: not fetched until Seek or reassignment
}

// fetcher is one run of a partition's fetch loop.
type fetcher struct {
	tp     polykafka.TopicPartition
	st     *partState
	dead   bool // guarded by consumer.mu: its chunks are dropped
	cancel context.CancelFunc
}

// chunk is what a fetch loop hands to Fetch: the records of one fetch, or
// an error.
type chunk struct {
	f    *fetcher
	msgs []kafka.Message
	err  error
}

// startFetch starts st's fetch loop at st.next. c.mu is held.
func (c *consumer) startFetch(tp polykafka.TopicPartition, st *partState) {
	ctx, cancel := context.WithCancel(c.ctx)
	f := &fetcher{tp: tp, st: st, cancel: cancel}
	st.run = f
	c.fetchWG.Add(1)
	go func() {
		defer c.fetchWG.Done()
		defer cancel()
		c.fetchLoop(ctx, f, st.next)
	}()
}

// stopFetch stops st's fetch loop, if any. c.mu is held.
func stopFetch(st *partState) {
	if st.run != nil {
		st.run.dead = true
		st.run.cancel()
		st.run = nil
	}
}

// stopAllFetches stops every fetch loop, forgets every partition and waits
// for the loops to return.
func (c *consumer) stopAllFetches() {
	c.mu.Lock()
	for tp, st := range c.parts {
		stopFetch(st)
		delete(c.parts, tp)
	}
	c.mu.Unlock()
	c.fetchWG.Wait()
}

// fetchLoop fetches f.tp from offset until ctx is done or the offset is out
// of range, with kafka.Client.Fetch (one partition per request; the
// transport gives each concurrent request its own connection, so one
// partition's long poll never holds up another's). Errors are handed to
// Fetch; after one, the loop fetches again after the reader backoff
// (Options.ReadBackoffMin/Max, kafka-go's defaults 100 ms and 1 s), as
// kafka.Reader does. A partition the
// transport's metadata does not show yet (created moments ago) is waited
// for silently, as kafka.Reader waits for its leader.
func (c *consumer) fetchLoop(ctx context.Context, f *fetcher, offset int64) {
	failures := 0
	backoff := func() bool {
		failures++
		return c.readBackoff.Wait(ctx, failures)
	}
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		return c.send(ctx, chunk{f: f, err: &driver.PartitionError{TopicPartition: f.tp, Err: err}}) && backoff()
	}
	for ctx.Err() == nil {
		blocks, err := c.fetchOnce(ctx, f, offset)
		for _, msgs := range blocks {
			offset = msgs[len(msgs)-1].Offset + 1
			if !c.send(ctx, chunk{f: f, msgs: msgs}) {
				return
			}
		}
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return
		case errors.Is(err, kafka.OffsetOutOfRange):
			c.send(ctx, chunk{f: f, err: &driver.PartitionError{TopicPartition: f.tp, Err: err}})
			return
		case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition), errors.Is(err, protocol.ErrNoLeader):
			if !backoff() {
				return
			}
		default:
			if !fail(err) {
				return
			}
		}
	}
}

// fetchOnce sends one fetch request for f's partition at offset and
// returns its records as kafka.Message values (keys and values copied; a
// null key or value stays nil and an empty one stays empty), in blocks of
// 16, 32, ... up to msgBlock messages, each allocated once and filled: the
// records' Native values point into them, so they are never reused, and
// growing one slice record by record cost more than the records
// themselves. It speaks the fetch API through the transport, as
// kafka.Client.Fetch does, but keeps what Client.Fetch drops: the aborted
// transactions, so that a read-committed consumer skips the records of
// aborted transactions.
func (c *consumer) fetchOnce(ctx context.Context, f *fetcher, offset int64) ([][]kafka.Message, error) {
	tp := f.tp
	m, err := c.fetchTr.RoundTrip(ctx, c.b.addr(), &fetchAPI.Request{
		ReplicaID:      -1,
		MaxWaitTime:    int32(c.rb.MaxWait / time.Millisecond),
		MinBytes:       int32(c.rb.MinBytes),
		MaxBytes:       int32(c.rb.MaxBytes),
		IsolationLevel: int8(c.rb.IsolationLevel),
		SessionID:      -1,
		SessionEpoch:   -1,
		Topics: []fetchAPI.RequestTopic{{
			Topic: tp.Topic,
			Partitions: []fetchAPI.RequestPartition{{
				Partition:          tp.Partition,
				CurrentLeaderEpoch: -1,
				FetchOffset:        offset,
				LogStartOffset:     -1,
				PartitionMaxBytes:  int32(c.rb.MaxBytes),
			}},
		}},
	})
	if err != nil {
		return nil, err
	}
	res := m.(*fetchAPI.Response)
	if res.ErrorCode != 0 {
		return nil, kafka.Error(res.ErrorCode)
	}
	if len(res.Topics) == 0 || len(res.Topics[0].Partitions) == 0 {
		return nil, nil
	}
	part := &res.Topics[0].Partitions[0]
	var perr error
	if part.ErrorCode != 0 {
		perr = kafka.Error(part.ErrorCode)
	}
	recs := part.RecordSet.Records
	if recs == nil {
		return nil, perr
	}
	if cl, ok := recs.(io.Closer); ok {
		defer cl.Close()
	}
	batches := []protocol.RecordReader{recs}
	if st, ok := recs.(*protocol.RecordStream); ok {
		batches = st.Records
	}
	aborted := newAbortedFilter(part.AbortedTransactions)
	var blocks [][]kafka.Message
	var msgs []kafka.Message // the last block
	done := func() [][]kafka.Message {
		if len(msgs) > 0 {
			blocks = append(blocks, msgs)
		}
		return blocks
	}
	for _, b := range batches {
		if aborted.skip(b) {
			continue
		}
		for {
			r, rerr := b.ReadRecord()
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) && perr == nil && len(msgs) == 0 && len(blocks) == 0 {
					return nil, rerr
				}
				break
			}
			if r.Offset < offset {
				closeBytes(r)
				continue
			}
			msg := kafka.Message{
				Topic:         tp.Topic,
				Partition:     int(tp.Partition),
				Offset:        r.Offset,
				HighWaterMark: part.HighWatermark,
				Time:          r.Time,
			}
			if len(r.Headers) > 0 {
				msg.Headers = slices.Clone(r.Headers)
			}
			msg.Key, err = protocol.ReadAll(r.Key)
			if err == nil {
				msg.Value, err = protocol.ReadAll(r.Value)
			}
			closeBytes(r)
			if err != nil {
				return done(), err
			}
			if len(msgs) == cap(msgs) {
				n := 16
				if msgs != nil {
					blocks = append(blocks, msgs)
					n = min(2*cap(msgs), msgBlock)
				}
				msgs = make([]kafka.Message, 0, n)
			}
			msgs = append(msgs, msg)
		}
	}
	return done(), perr
}

// msgBlock is the largest block of messages fetchOnce allocates at once.
const msgBlock = 256

// abortedFilter skips the batches of aborted transactions, as Kafka's Java
// consumer does: a transactional batch of a producer whose aborted
// transaction started at or before the batch is skipped, until that
// producer's control batch (the abort marker).
type abortedFilter struct {
	pending []fetchAPI.ResponseTransaction // sorted by FirstOffset
	active  map[int64]bool
}

func newAbortedFilter(txs []fetchAPI.ResponseTransaction) *abortedFilter {
	f := &abortedFilter{pending: slices.Clone(txs)}
	slices.SortFunc(f.pending, func(a, b fetchAPI.ResponseTransaction) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return f
}

// skip reports whether batch b is to be skipped: control batches always,
// and batches of aborted transactions.
func (f *abortedFilter) skip(b protocol.RecordReader) bool {
	switch b := b.(type) {
	case *protocol.ControlBatch:
		if f.active != nil {
			delete(f.active, b.ProducerID)
		}
		return true
	case *protocol.RecordBatch:
		for len(f.pending) > 0 && f.pending[0].FirstOffset <= b.BaseOffset {
			if f.active == nil {
				f.active = make(map[int64]bool)
			}
			f.active[f.pending[0].ProducerID] = true
			f.pending = f.pending[1:]
		}
		return b.Attributes.Transactional() && f.active[b.ProducerID]
	}
	return false
}

func closeBytes(r *kafka.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}

// send hands ch to Fetch.
func (c *consumer) send(ctx context.Context, ch chunk) bool {
	select {
	case c.chunks <- ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// Fetch implements driver.Consumer.
func (c *consumer) Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error) {
	out := buf[:0]
	if c.isClosed() {
		return out, errClosed
	}
	if max <= 0 {
		max = 1
	}
	var errs []error
	block := true
	for len(out) < max {
		if c.left.f == nil {
			var ch chunk
			if block {
				select {
				case ch = <-c.chunks:
				case <-c.wake:
				case <-ctx.Done():
					return out, ctx.Err()
				case <-c.ctx.Done():
					return out, errClosed
				}
			} else {
				select {
				case ch = <-c.chunks:
				case <-c.wake:
				default:
				}
			}
			c.mu.Lock()
			if err := c.groupErr; err != nil {
				c.groupErr = nil
				errs = append(errs, err)
			}
			c.mu.Unlock()
			if ch.f == nil {
				if len(errs) > 0 || !block {
					break
				}
				continue
			}
			c.left, c.leftAt = ch, 0
		}
		block = false
		out, errs = c.take(out, max, errs)
		if len(errs) > 0 {
			break
		}
	}
	if sortNeeded(out) {
		slices.SortStableFunc(out, func(a, b polykafka.Record) int {
			return compareTP(a.TopicPartition(), b.TopicPartition())
		})
	}
	return out, errors.Join(errs...)
}

// take moves records of the pending chunk into out (at most max in all),
// if its loop is still current.
func (c *consumer) take(out []polykafka.Record, max int, errs []error) ([]polykafka.Record, []error) {
	ch := &c.left
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.f.dead {
		*ch = chunk{}
		return out, errs
	}
	if ch.err != nil {
		if errors.Is(ch.err, kafka.OffsetOutOfRange) {
			ch.f.st.halted = true
			ch.f.st.run = nil
			ch.f.dead = true
		}
		errs = append(errs, ch.err)
		*ch = chunk{}
		return out, errs
	}
	for c.leftAt < len(ch.msgs) && len(out) < max {
		m := &ch.msgs[c.leftAt]
		c.leftAt++
		if m.Offset < ch.f.st.next {
			continue
		}
		out = appendRecord(out, m)
		ch.f.st.next = m.Offset + 1
	}
	if c.leftAt == len(ch.msgs) {
		*ch = chunk{}
	}
	return out, errs
}

// appendRecord appends m converted to rs; the record's Native is m itself,
// a pointer into its fetch's slice (boxing a kafka.Message value would
// allocate a copy per record). rs is usually a reused buffer: the record
// is written in place one field at a time, every field (appending a Record
// value costs a bulk write barrier per record while the GC runs; the
// root package's Record field test fails when Record gains a field this
// must set).
func appendRecord(rs []polykafka.Record, m *kafka.Message) []polykafka.Record {
	rs = slices.Grow(rs, 1)
	rs = rs[:len(rs)+1]
	r := &rs[len(rs)-1]
	r.Topic = m.Topic
	r.Partition = int32(m.Partition)
	r.Offset = m.Offset
	r.Key = m.Key
	r.Value = m.Value
	r.Headers = nil
	if len(m.Headers) > 0 {
		r.Headers = make([]polykafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = polykafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	r.Timestamp = m.Time
	r.Native = m
	return rs
}

// sortNeeded reports whether the records of some partition in rs are not
// consecutive.
func sortNeeded(rs []polykafka.Record) bool {
	if len(rs) < 3 {
		return false
	}
	var seen map[polykafka.TopicPartition]bool
	for i := 1; i < len(rs); i++ {
		if rs[i].Partition == rs[i-1].Partition && rs[i].Topic == rs[i-1].Topic {
			continue
		}
		if seen == nil {
			seen = make(map[polykafka.TopicPartition]bool)
		}
		seen[rs[i-1].TopicPartition()] = true
		if seen[rs[i].TopicPartition()] {
			return true
		}
	}
	return false
}

// Pause implements driver.Pauser: the partitions' fetch loops stop, and
// records they fetched that Fetch has not returned are dropped (fetched
// again on Resume).
func (c *consumer) Pause(ctx context.Context, tps []polykafka.TopicPartition) error {
	if c.isClosed() {
		return errClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		c.paused[tp] = true
		if st := c.parts[tp]; st != nil {
			stopFetch(st)
		}
	}
	return nil
}

// Resume implements driver.Pauser: the partitions' fetch loops start again
// at the first offset Fetch has not returned.
func (c *consumer) Resume(ctx context.Context, tps []polykafka.TopicPartition) error {
	if c.isClosed() {
		return errClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		delete(c.paused, tp)
		if st := c.parts[tp]; st != nil && st.run == nil && !st.halted {
			c.startFetch(tp, st)
		}
	}
	return nil
}

// Seek implements driver.Seeker by restarting the partitions' fetch loops
// at the given offsets.
func (c *consumer) Seek(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error {
	if c.isClosed() {
		return errClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, off := range offsets {
		st := c.parts[tp]
		if st == nil {
			continue
		}
		stopFetch(st)
		st.next, st.halted = off, false
		if !c.paused[tp] {
			c.startFetch(tp, st)
		}
	}
	return nil
}
