package kafkago

// Fetching: one loop per assigned partition, each on its own kafka.Conn to
// the partition leader, started exactly at the decided offset (no reset
// policy: kafka.Reader would jump to the log start on its own). The loops
// hand whole fetched batches (chunks) to a bounded channel; Fetch drains
// it. Pause, Seek and revocation stop a partition's loop; Fetch drops the
// chunks of stopped loops, so a record is returned only while its loop is
// current, and a restarted loop starts at the first offset Fetch has not
// returned.

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

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
// of range. Errors are handed to Fetch; after one, the loop reconnects
// after kafka-go's reader backoff (100 ms doubling to 1 s), as
// kafka.Reader does.
func (c *consumer) fetchLoop(ctx context.Context, f *fetcher, offset int64) {
	var conn *kafka.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	failures := 0
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if conn != nil {
			conn.Close()
			conn = nil
		}
		if !c.send(ctx, chunk{f: f, err: &driver.PartitionError{TopicPartition: f.tp, Err: err}}) {
			return false
		}
		failures++
		d := min(100*time.Millisecond<<min(failures-1, 4), time.Second)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if conn == nil {
			var err error
			conn, err = c.dialLeader(ctx, f.tp)
			if err != nil {
				if !fail(err) {
					return
				}
				continue
			}
		}
		msgs, err := c.readBatch(ctx, conn, offset)
		if len(msgs) > 0 {
			offset = msgs[len(msgs)-1].Offset + 1
			if !c.send(ctx, chunk{f: f, msgs: msgs}) {
				return
			}
		}
		var ke kafka.Error
		var ne net.Error
		switch {
		case err == nil, errors.Is(err, io.EOF):
			failures = 0
		case ctx.Err() != nil:
			return
		case errors.Is(err, kafka.OffsetOutOfRange):
			c.send(ctx, chunk{f: f, err: &driver.PartitionError{TopicPartition: f.tp, Err: err}})
			return
		case errors.As(err, &ke) && ke == kafka.RequestTimedOut:
		case !errors.As(err, &ke) && errors.As(err, &ne) && ne.Timeout() && len(msgs) > 0:
			// The read deadline ended a batch that was still arriving:
			// carry on from the last record.
		default:
			if !fail(err) {
				return
			}
		}
	}
}

// dialLeader connects to tp's leader, found with an uncached metadata
// request on a seed broker.
func (c *consumer) dialLeader(ctx context.Context, tp polykafka.TopicPartition) (*kafka.Conn, error) {
	var err error
	for _, addr := range c.b.conn.Brokers {
		var conn *kafka.Conn
		if conn, err = c.dialer.DialLeader(ctx, "tcp", addr, tp.Topic, int(tp.Partition)); err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, err
}

// readBatch sends one fetch request at offset and returns its records.
func (c *consumer) readBatch(ctx context.Context, conn *kafka.Conn, offset int64) ([]kafka.Message, error) {
	if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return nil, err
	}
	var msgs []kafka.Message
	_ = conn.SetDeadline(time.Now().Add(c.rb.MaxWait + c.b.opts.Timeout))
	err := withConnCtx(ctx, conn, func() error {
		batch := conn.ReadBatchWith(c.rb)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		return batch.Close()
	})
	return msgs, err
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
		m := ch.msgs[c.leftAt]
		c.leftAt++
		if m.Offset < ch.f.st.next {
			continue
		}
		out = append(out, toRecord(m))
		ch.f.st.next = m.Offset + 1
	}
	if c.leftAt == len(ch.msgs) {
		*ch = chunk{}
	}
	return out, errs
}

func toRecord(m kafka.Message) polykafka.Record {
	r := polykafka.Record{
		Topic:     m.Topic,
		Partition: int32(m.Partition),
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Timestamp: m.Time,
		Native:    m,
	}
	if len(m.Headers) > 0 {
		r.Headers = make([]polykafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = polykafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
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
