package clock

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNowTracksRealTime(t *testing.T) {
	Acquire()
	defer Release()
	for i := 0; i < 50; i++ {
		before := time.Now()
		got := Now()
		after := time.Now()
		if got.After(after) {
			t.Fatalf("Now %v is after the real time %v", got, after)
		}
		// A tick is 1ms; allow scheduling delay on a loaded test machine.
		if before.Sub(got) > 50*time.Millisecond {
			t.Fatalf("Now %v lags the real time %v by %v", got, before, before.Sub(got))
		}
	}
}

func TestParksWhenIdleAndWakes(t *testing.T) {
	Acquire()
	defer Release()
	deadline := time.Now().Add(10 * time.Second)
	for !c.parked.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the clock did not park after 100 ticks without a reader")
		}
		time.Sleep(5 * time.Millisecond) // polling the clock's own state, not a record
	}
	before := time.Now()
	got := Now() // the real clock while parked
	if got.Before(before) {
		t.Fatalf("a parked clock's Now %v is before the real time %v", got, before)
	}
	deadline = time.Now().Add(10 * time.Second)
	for c.now.Load() < before.UnixNano() {
		if time.Now().After(deadline) {
			t.Fatal("the clock did not resume ticking after a reader woke it")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReleaseStopsTheGoroutine(t *testing.T) {
	Acquire()
	Acquire()
	Release()
	if c.now.Load() == 0 {
		t.Fatal("the clock stopped while a user still holds it")
	}
	Release()
	if c.now.Load() != 0 {
		t.Fatal("the clock still runs after its last user released it")
	}
	// goleak (TestMain) checks that no goroutine is left.
}

func BenchmarkNow(b *testing.B) {
	Acquire()
	defer Release()
	for i := 0; i < b.N; i++ {
		_ = Now()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = time.Now()
	}
}
