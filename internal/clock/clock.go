// Package clock is a coarse wall clock for record timestamps: Now costs an
// atomic load instead of a clock read, and is at most about a millisecond
// behind the real time (more only if the process is starved of CPU).
//
// A record timestamp has millisecond precision on the wire, and a clock
// read per record was the largest single cost the portable producer added
// over a raw client (kgo reads the clock for every record without a
// timestamp; on virtual machines that read can cost tens of nanoseconds).
// The clock runs one goroutine, only while at least one user holds it
// (Acquire/Release), and parks it after 100ms without a reader.
package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

type state struct {
	now    atomic.Int64 // Unix nanoseconds of the last tick
	read   atomic.Bool  // Now was called since the last idle check
	parked atomic.Bool  // the ticker waits for a reader
	wake   chan struct{}

	mu    sync.Mutex
	users int
	stop  chan struct{}
	done  chan struct{}
}

var c = state{wake: make(chan struct{}, 1)}

const (
	tick      = time.Millisecond
	idleTicks = 100
)

// Acquire starts the clock if it is not running. Every Acquire is paired
// with a Release.
func Acquire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users++
	if c.users > 1 {
		return
	}
	c.now.Store(time.Now().UnixNano())
	c.parked.Store(false)
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go run(c.stop, c.done)
}

// Release stops the clock when its last user releases it, and returns once
// its goroutine has ended.
func Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users--
	if c.users > 0 {
		return
	}
	close(c.stop)
	<-c.done
}

// Now returns the current time to about a millisecond, or time.Now() when
// the clock is not running or was parked.
func Now() time.Time {
	if c.parked.Load() {
		if c.parked.CompareAndSwap(true, false) {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		return time.Now()
	}
	if !c.read.Load() {
		c.read.Store(true)
	}
	ns := c.now.Load()
	if ns == 0 {
		return time.Now()
	}
	return time.Unix(0, ns)
}

func run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(tick)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-stop:
			c.now.Store(0)
			return
		case <-t.C:
		}
		c.now.Store(time.Now().UnixNano())
		if idle++; idle < idleTicks {
			continue
		}
		idle = 0
		if c.read.Swap(false) {
			continue
		}
		// Nobody read the clock for idleTicks: park until a reader comes
		// (Now reads the real clock while parked).
		c.parked.Store(true)
		t.Stop()
		select {
		case <-stop:
			c.now.Store(0)
			return
		case <-c.wake:
		}
		c.now.Store(time.Now().UnixNano())
		t.Reset(tick)
	}
}
