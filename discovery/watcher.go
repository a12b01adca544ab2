package discovery

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// DefaultInterval is the default time between two partition-count polls:
// 5 s. One poll is one Metadata request for the subscribed topics, so a
// thousand consumers cost the cluster about 200 small requests a second,
// while a new partition is noticed within about 5 s (plus one heartbeat
// interval when a non-leader notices). Because new partitions start at
// their earliest offset, the interval only changes how fresh their records
// are when first read, never whether they are read.
const DefaultInterval = 5 * time.Second

// PartitionCounter reads partition counts from fresh metadata. Every
// polykafka consumer driver implements it.
type PartitionCounter interface {
	PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error)
}

// Growth is one topic that gained partitions.
type Growth struct {
	Topic string
	// From and To are the partition counts before and after.
	From, To int32
	// Seen is when the poll that noticed it returned.
	Seen time.Time
}

// Watcher polls the partition counts of a set of topics and reports growth.
// A Watcher may be shared, for example by the consumers and producers of
// one application: its methods are safe for concurrent use.
type Watcher struct {
	c        PartitionCounter
	interval time.Duration
	logger   *slog.Logger
	onGrowth func(ctx context.Context, counts map[string]int32, grown []Growth)

	// pollMu serialises polls, so that each growth is reported once and
	// in order even when Poll runs concurrently with Run.
	pollMu sync.Mutex

	mu     sync.Mutex       // guards the fields below
	topics []string         // watched topics, sorted; replaced, never modified in place
	last   map[string]int32 // reference count per topic; absent until first seen
}

// NewWatcher returns a watcher of topics whose counts were last seen as
// initial. Every interval it reads the counts through c; when some grew it
// calls onGrowth with all the counts and the topics that grew, from the
// watcher's goroutine. A failed poll is logged at warn level and retried
// at the next tick. A count that shrinks (topic deleted and recreated) is
// logged and becomes the new reference.
//
// onGrowth is called by one poll at a time, with a map it may keep. It may
// call [Watcher.Counts] and [Watcher.Watch] but not [Watcher.Poll], which
// would deadlock.
func NewWatcher(c PartitionCounter, initial map[string]int32, interval time.Duration, logger *slog.Logger,
	onGrowth func(ctx context.Context, counts map[string]int32, grown []Growth),
) *Watcher {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	last := maps.Clone(initial)
	if last == nil {
		last = make(map[string]int32)
	}
	return &Watcher{
		c:        c,
		topics:   slices.Sorted(maps.Keys(initial)),
		interval: interval,
		logger:   logger,
		onGrowth: onGrowth,
		last:     last,
	}
}

// Watch adds topics to the watched set; topics already watched are
// ignored. A topic added this way has no reference count yet: the first
// poll that sees it records its count without reporting growth, and later
// polls report growth from there. Call [Watcher.Poll] to read it at once
// rather than at the next interval.
func (w *Watcher) Watch(topics ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	next := slices.Clone(w.topics) // a poll may be reading w.topics
	for _, topic := range topics {
		if i, found := slices.BinarySearch(next, topic); !found {
			next = slices.Insert(next, i, topic)
		}
	}
	w.topics = next
}

// Counts returns the latest partition count the watcher saw for every
// watched topic it has a count for (the initial count until a poll
// succeeds). The map is the caller's.
func (w *Watcher) Counts() map[string]int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.last)
}

// Run polls every interval until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.Poll(ctx)
	}
}

// Poll reads the counts once and reports growth before it returns. Run
// calls it every interval; it is exported for callers that want to check
// now. Concurrent polls run one after the other. With no topics watched
// it sends no request.
func (w *Watcher) Poll(ctx context.Context) {
	w.pollMu.Lock()
	defer w.pollMu.Unlock()

	w.mu.Lock()
	topics := w.topics
	w.mu.Unlock()
	if len(topics) == 0 {
		return // an empty Metadata request would ask for every topic
	}

	pctx, cancel := context.WithTimeout(ctx, w.interval+10*time.Second)
	counts, err := w.c.PartitionCounts(pctx, topics)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("polykafka: partition discovery poll failed", "err", err)
		}
		return
	}

	var grown []Growth
	now := time.Now()
	w.mu.Lock()
	for _, topic := range topics {
		n, ok := counts[topic]
		if !ok {
			continue
		}
		prev, known := w.last[topic]
		switch {
		case !known:
		case n > prev:
			grown = append(grown, Growth{Topic: topic, From: prev, To: n, Seen: now})
		case n < prev:
			w.logger.Warn("polykafka: topic has fewer partitions than before; was it recreated?", "topic", topic, "from", prev, "to", n)
		}
		w.last[topic] = n
	}
	snapshot := maps.Clone(w.last)
	w.mu.Unlock()

	if len(grown) > 0 {
		w.onGrowth(ctx, snapshot, grown)
	}
}
