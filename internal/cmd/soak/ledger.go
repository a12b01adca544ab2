package main

import (
	"strconv"
	"sync"
	"time"

	"github.com/polykafka/polykafka"
)

// ledger is what happened to every id: its callbacks, where it was
// acknowledged, and how often the group consumed it. Ids are 0, 1, 2, ...
// in the order they were handed to SendAsync.
type ledger struct {
	start time.Time

	mu       sync.Mutex
	produced int
	cbs      []uint8  // callbacks per id
	ackPart  []int32  // partition of the acknowledged id, -1 if not acknowledged
	ackOff   []int64  // offset of the acknowledged id
	ackAt    []int32  // milliseconds since start of the acknowledgement
	consumed []uint32 // deliveries per id
	failed   map[string]int
	foreign  int // consumed values that are no id of this run
	unique   int // ids consumed at least once
	pending  int // ids acknowledged and not consumed yet
}

func newLedger(start time.Time) *ledger {
	return &ledger{start: start, failed: make(map[string]int)}
}

// next registers one more produced id and returns it.
func (l *ledger) next() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.produced
	l.produced++
	l.cbs = append(l.cbs, 0)
	l.ackPart = append(l.ackPart, -1)
	l.ackOff = append(l.ackOff, -1)
	l.ackAt = append(l.ackAt, -1)
	l.consumed = append(l.consumed, 0)
	return id
}

// callback records the outcome of id's send.
func (l *ledger) callback(id int, r *polykafka.Record, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cbs[id]++
	if err != nil {
		l.failed[polykafka.Code(err).String()]++
		return
	}
	l.ackPart[id] = r.Partition
	l.ackOff[id] = r.Offset
	l.ackAt[id] = int32(now.Sub(l.start).Milliseconds())
	if l.consumed[id] == 0 {
		l.pending++
	}
}

// consume records a delivery of the record whose value is v.
func (l *ledger) consume(v []byte) {
	id, err := strconv.Atoi(string(v))
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || id < 0 || id >= l.produced {
		l.foreign++
		return
	}
	l.consumed[id]++
	if l.consumed[id] == 1 {
		l.unique++
		if l.ackPart[id] >= 0 {
			l.pending--
		}
	}
}

// progress returns the ids consumed at least once and the ids acknowledged
// and not consumed yet, without counting.
func (l *ledger) progress() (unique, pending int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unique, l.pending
}

// counts is a snapshot of the ledger's totals.
type counts struct {
	produced, acked, failed, unique, lost, duplicated int
	noCallback, extraCallbacks, foreign               int
	failedBy                                          map[string]int
	lostIDs                                           []int
}

func (l *ledger) counts() counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := counts{produced: l.produced, foreign: l.foreign, failedBy: make(map[string]int)}
	for k, n := range l.failed {
		c.failed += n
		c.failedBy[k] = n
	}
	for id := 0; id < l.produced; id++ {
		switch {
		case l.cbs[id] == 0:
			c.noCallback++
		case l.cbs[id] > 1:
			c.extraCallbacks += int(l.cbs[id]) - 1
		}
		if l.consumed[id] > 0 {
			c.unique++
			c.duplicated += int(l.consumed[id]) - 1
		}
		if l.ackPart[id] >= 0 {
			c.acked++
			if l.consumed[id] == 0 {
				c.lost++
				c.lostIDs = append(c.lostIDs, id)
			}
		}
	}
	return c
}

// ack returns where and when id was acknowledged.
func (l *ledger) ack(id int) (partition int32, offset int64, at time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ackPart[id], l.ackOff[id], time.Duration(l.ackAt[id]) * time.Millisecond
}
