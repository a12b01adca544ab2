package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/polykafka/polykafka/internal/testcluster"
)

// fakeCounter is a PartitionCounter whose counts and error the test sets.
type fakeCounter struct {
	mu     sync.Mutex
	counts map[string]int32
	err    error
	polls  int
	topics []string // topics of the last call
}

func newFakeCounter(counts map[string]int32) *fakeCounter {
	return &fakeCounter{counts: maps.Clone(counts)}
}

func (f *fakeCounter) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	f.topics = append([]string(nil), topics...)
	if f.err != nil {
		return nil, f.err
	}
	out := make(map[string]int32, len(topics))
	for _, topic := range topics {
		if n, ok := f.counts[topic]; ok {
			out[topic] = n
		}
	}
	return out, nil
}

func (f *fakeCounter) set(topic string, n int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[topic] = n
}

func (f *fakeCounter) remove(topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.counts, topic)
}

func (f *fakeCounter) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeCounter) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

// growthCall is one call of onGrowth.
type growthCall struct {
	counts map[string]int32
	grown  []Growth
}

// recorder records the calls of onGrowth.
type recorder struct {
	mu    sync.Mutex
	calls []growthCall
}

func (r *recorder) onGrowth(_ context.Context, counts map[string]int32, grown []Growth) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, growthCall{counts: counts, grown: grown})
}

func (r *recorder) get() []growthCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]growthCall(nil), r.calls...)
}

// requireGrowth checks that call reports counts and grown (compared without
// Seen), and that every Seen lies in [after, before].
func requireGrowth(t *testing.T, call growthCall, counts map[string]int32, grown []Growth, after, before time.Time) {
	t.Helper()
	require.Equal(t, counts, call.counts, "counts passed to onGrowth")
	got := make([]Growth, len(call.grown))
	for i, g := range call.grown {
		assert.False(t, g.Seen.Before(after), "Growth.Seen %v is before the poll started at %v", g.Seen, after)
		assert.False(t, g.Seen.After(before), "Growth.Seen %v is after the poll returned at %v", g.Seen, before)
		g.Seen = time.Time{}
		got[i] = g
	}
	require.Equal(t, grown, got, "growths passed to onGrowth")
}

func newTestWatcher(c PartitionCounter, initial map[string]int32, logs *bytes.Buffer, r *recorder) *Watcher {
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return NewWatcher(c, initial, time.Hour, logger, r.onGrowth)
}

func TestWatcherPollGrowth(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 3, "b": 2})
	var r recorder
	w := newTestWatcher(c, map[string]int32{"a": 3, "b": 2}, nil, &r)

	c.set("a", 5)
	before := time.Now()
	w.Poll(t.Context())
	after := time.Now()

	calls := r.get()
	require.Len(t, calls, 1, "one growth must be reported once")
	requireGrowth(t, calls[0], map[string]int32{"a": 5, "b": 2},
		[]Growth{{Topic: "a", From: 3, To: 5}}, before, after)

	// No change since: no further call.
	w.Poll(t.Context())
	assert.Len(t, r.get(), 1, "a count that did not change must not be reported again")
}

func TestWatcherPollSeveralTopicsGrow(t *testing.T) {
	c := newFakeCounter(map[string]int32{"b": 4, "a": 2, "c": 1})
	var r recorder
	w := newTestWatcher(c, map[string]int32{"a": 1, "b": 1, "c": 1}, nil, &r)

	before := time.Now()
	w.Poll(t.Context())
	after := time.Now()

	calls := r.get()
	require.Len(t, calls, 1, "growth of several topics in one poll must be one call")
	requireGrowth(t, calls[0], map[string]int32{"a": 2, "b": 4, "c": 1},
		[]Growth{{Topic: "a", From: 1, To: 2}, {Topic: "b", From: 1, To: 4}}, before, after)
	assert.Equal(t, []string{"a", "b", "c"}, c.topics, "the watcher must poll its topics, sorted")
}

func TestWatcherPollNoChange(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 3})
	var r recorder
	w := newTestWatcher(c, map[string]int32{"a": 3}, nil, &r)

	for range 3 {
		w.Poll(t.Context())
	}
	assert.Equal(t, 3, c.pollCount())
	assert.Empty(t, r.get(), "no growth must mean no call")
}

func TestWatcherPollShrink(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 2})
	var r recorder
	var logs bytes.Buffer
	w := newTestWatcher(c, map[string]int32{"a": 4}, &logs, &r)

	w.Poll(t.Context())
	assert.Empty(t, r.get(), "a shrink must not be reported as growth")
	assert.Contains(t, logs.String(), "fewer partitions", "a shrink must be logged")

	// The smaller count is the new reference: growth is reported from it.
	c.set("a", 3)
	before := time.Now()
	w.Poll(t.Context())
	after := time.Now()
	calls := r.get()
	require.Len(t, calls, 1)
	requireGrowth(t, calls[0], map[string]int32{"a": 3},
		[]Growth{{Topic: "a", From: 2, To: 3}}, before, after)
}

func TestWatcherPollError(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 3})
	c.setErr(errors.New("metadata request failed"))
	var r recorder
	var logs bytes.Buffer
	w := newTestWatcher(c, map[string]int32{"a": 2}, &logs, &r)

	w.Poll(t.Context())
	assert.Empty(t, r.get(), "a failed poll must not be reported as growth")
	assert.Contains(t, logs.String(), "poll failed", "a failed poll must be logged")
	assert.Contains(t, logs.String(), "metadata request failed")

	c.setErr(nil)
	before := time.Now()
	w.Poll(t.Context())
	after := time.Now()
	calls := r.get()
	require.Len(t, calls, 1, "the next successful poll must report the growth")
	requireGrowth(t, calls[0], map[string]int32{"a": 3},
		[]Growth{{Topic: "a", From: 2, To: 3}}, before, after)
}

func TestWatcherPollErrorAfterCancelNotLogged(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 3})
	c.setErr(context.Canceled)
	var r recorder
	var logs bytes.Buffer
	w := newTestWatcher(c, map[string]int32{"a": 2}, &logs, &r)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w.Poll(ctx)
	assert.Empty(t, r.get())
	assert.Empty(t, logs.String(), "a poll failing because the watcher is stopping must not be logged")
}

func TestWatcherPollMissingTopic(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 2, "b": 5})
	c.remove("b")
	var r recorder
	w := newTestWatcher(c, map[string]int32{"a": 2, "b": 2}, nil, &r)

	w.Poll(t.Context())
	assert.Empty(t, r.get(), "a topic missing from the counts must not be reported")

	// It keeps its reference count while missing.
	c.set("b", 3)
	before := time.Now()
	w.Poll(t.Context())
	after := time.Now()
	calls := r.get()
	require.Len(t, calls, 1)
	requireGrowth(t, calls[0], map[string]int32{"a": 2, "b": 3},
		[]Growth{{Topic: "b", From: 2, To: 3}}, before, after)
}

func TestWatcherDoesNotShareMaps(t *testing.T) {
	initial := map[string]int32{"a": 2}
	c := newFakeCounter(map[string]int32{"a": 3})
	var mu sync.Mutex
	var calls int
	w := NewWatcher(c, initial, time.Hour, nil, func(_ context.Context, counts map[string]int32, _ []Growth) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		counts["a"] = 1 // must not become the watcher's reference
	})
	initial["a"] = 1 // must not become the watcher's reference either

	w.Poll(t.Context())
	w.Poll(t.Context())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, calls, "the watcher must keep its own copies of the initial and reported counts")
}

func TestWatcherRun(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 1})
	var r recorder
	w := NewWatcher(c, map[string]int32{"a": 1}, 10*time.Millisecond, nil, r.onGrowth)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(cancel)

	require.Eventually(t, func() bool { return c.pollCount() >= 2 }, 5*time.Second, time.Millisecond,
		"Run must poll every interval")
	c.set("a", 4)
	require.Eventually(t, func() bool { return len(r.get()) == 1 }, 5*time.Second, time.Millisecond,
		"Run must report growth")
	calls := r.get()
	assert.Equal(t, map[string]int32{"a": 4}, calls[0].counts)
	require.Len(t, calls[0].grown, 1)
	assert.Equal(t, "a", calls[0].grown[0].Topic)
	assert.Equal(t, int32(1), calls[0].grown[0].From)
	assert.Equal(t, int32(4), calls[0].grown[0].To)

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	assert.Len(t, r.get(), 1, "growth must be reported once")
}

func TestWatcherRunCancelledBeforeStart(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 1})
	var r recorder
	w := NewWatcher(c, map[string]int32{"a": 1}, 10*time.Millisecond, nil, r.onGrowth)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return for a cancelled context")
	}
}

func TestNewWatcherDefaults(t *testing.T) {
	w := NewWatcher(newFakeCounter(nil), nil, 0, nil, func(context.Context, map[string]int32, []Growth) {})
	assert.Equal(t, DefaultInterval, w.interval, "a non-positive interval must mean DefaultInterval")
	assert.NotNil(t, w.logger, "a nil logger must mean a discarding logger")
	w.Poll(t.Context()) // no topics: nothing to report, no panic
}

// TestWatcherPollConcurrentWithRun calls Poll, Watch and Counts from
// several goroutines while Run polls and the count grows one at a time.
// Under -race it fails if the watcher's state is not guarded; without
// -race it fails if concurrent polls report a growth twice or out of
// order.
func TestWatcherPollConcurrentWithRun(t *testing.T) {
	const final = 60
	c := newFakeCounter(map[string]int32{"a": 1, "w0": 1, "w1": 1, "w2": 1})
	var r recorder
	var logs bytes.Buffer
	w := NewWatcher(c, map[string]int32{"a": 1}, time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), r.onGrowth)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	for i := range 3 {
		wg.Go(func() {
			w.Watch(fmt.Sprintf("w%d", i))
			for ctx.Err() == nil {
				w.Poll(ctx)
				_ = w.Counts()
			}
		})
	}
	for n := int32(2); n <= final; n++ {
		c.set("a", n)
		require.Eventually(t, func() bool { return w.Counts()["a"] == n }, 5*time.Second, 100*time.Microsecond,
			"the watcher must see count %d", n)
	}
	cancel()
	wg.Wait()

	calls := r.get()
	require.NotEmpty(t, calls)
	from := int32(1)
	for _, call := range calls {
		for _, g := range call.grown {
			require.Equal(t, "a", g.Topic, "a topic added by Watch must not be reported as growth when first seen")
			require.Equal(t, from, g.From, "growths must be reported once each, in order")
			require.Greater(t, g.To, g.From)
			from = g.To
		}
	}
	assert.Equal(t, int32(final), from, "every growth must be reported")
	assert.NotContains(t, logs.String(), "fewer partitions", "concurrent polls must not apply an older count over a newer one")
	assert.Equal(t, map[string]int32{"a": final, "w0": 1, "w1": 1, "w2": 1}, w.Counts())
}

func TestWatcherWatch(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 2, "b": 3})
	var r recorder
	w := newTestWatcher(c, map[string]int32{"a": 2}, nil, &r)

	w.Watch("b", "a", "b")
	assert.Equal(t, map[string]int32{"a": 2}, w.Counts(), "a topic added by Watch has no count before a poll sees it")

	w.Poll(t.Context())
	assert.Equal(t, []string{"a", "b"}, c.topics, "the watcher must poll the added topic once, sorted with the others")
	assert.Empty(t, r.get(), "the first count of a topic added by Watch must not be reported as growth")
	assert.Equal(t, map[string]int32{"a": 2, "b": 3}, w.Counts())

	c.set("b", 5)
	before := time.Now()
	w.Poll(t.Context())
	after := time.Now()
	calls := r.get()
	require.Len(t, calls, 1, "growth of a topic added by Watch must be reported")
	requireGrowth(t, calls[0], map[string]int32{"a": 2, "b": 5},
		[]Growth{{Topic: "b", From: 3, To: 5}}, before, after)
}

func TestWatcherCounts(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 4})
	var r recorder
	w := newTestWatcher(c, map[string]int32{"a": 2}, nil, &r)
	assert.Equal(t, map[string]int32{"a": 2}, w.Counts(), "before a poll, Counts must be the initial counts")

	w.Poll(t.Context())
	counts := w.Counts()
	assert.Equal(t, map[string]int32{"a": 4}, counts, "Counts must be the latest counts seen")
	counts["a"] = 1
	assert.Equal(t, map[string]int32{"a": 4}, w.Counts(), "the map returned by Counts must be the caller's")
}

func TestWatcherNoTopicsNoRequest(t *testing.T) {
	c := newFakeCounter(map[string]int32{"a": 1})
	var r recorder
	w := newTestWatcher(c, nil, nil, &r)

	w.Poll(t.Context())
	assert.Zero(t, c.pollCount(), "a watcher with no topics must not send a request (an empty Metadata request asks for every topic)")
	assert.Empty(t, w.Counts())

	w.Watch("a")
	w.Poll(t.Context())
	assert.Equal(t, 1, c.pollCount())
	assert.Equal(t, map[string]int32{"a": 1}, w.Counts())
}

// adminCounter reads partition counts with a franz-go admin client.
type adminCounter struct{ adm *kadm.Client }

func (a adminCounter) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	md, err := a.adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int32, len(topics))
	for name, td := range md.Topics {
		if td.Err == nil {
			out[name] = int32(len(td.Partitions))
		}
	}
	return out, nil
}

// TestWatcherOnCluster is what a producer sharing the watcher relies on: a
// topic added with Watch is counted, and its growth on a broker is seen
// within the interval.
func TestWatcherOnCluster(t *testing.T) {
	cluster := testcluster.New(t)
	topic := cluster.Topic(t, 2)
	var r recorder
	w := NewWatcher(adminCounter{cluster.Admin()}, nil, 50*time.Millisecond, nil, r.onGrowth)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	w.Watch(topic)
	require.Eventually(t, func() bool { return w.Counts()[topic] == 2 }, 10*time.Second, 10*time.Millisecond,
		"the watcher must count a topic added by Watch")
	assert.Empty(t, r.get(), "the first count of a watched topic is not growth")

	cluster.AddPartitions(t, topic, 4)
	grown := time.Now()
	require.Eventually(t, func() bool { return len(r.get()) == 1 }, 10*time.Second, 10*time.Millisecond,
		"the watcher must report the growth")
	assert.Less(t, time.Since(grown), 5*time.Second, "growth must be noticed within about one interval")
	call := r.get()[0]
	assert.Equal(t, map[string]int32{topic: 4}, call.counts)
	require.Len(t, call.grown, 1)
	assert.Equal(t, Growth{Topic: topic, From: 2, To: 4}, Growth{Topic: call.grown[0].Topic, From: call.grown[0].From, To: call.grown[0].To})
	assert.Equal(t, int32(4), w.Counts()[topic])
}
