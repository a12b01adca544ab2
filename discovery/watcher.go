package discovery

import (
	"context"
	"log/slog"
	"maps"
	"slices"
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
type Watcher struct {
	c        PartitionCounter
	topics   []string
	interval time.Duration
	logger   *slog.Logger
	onGrowth func(ctx context.Context, counts map[string]int32, grown []Growth)
	last     map[string]int32
}

// NewWatcher returns a watcher of topics whose counts were last seen as
// initial. Every interval it reads the counts through c; when some grew it
// calls onGrowth with all the counts and the topics that grew, from the
// watcher's goroutine. A failed poll is logged at warn level and retried
// at the next tick. A count that shrinks (topic deleted and recreated) is
// logged and becomes the new reference.
func NewWatcher(c PartitionCounter, initial map[string]int32, interval time.Duration, logger *slog.Logger,
	onGrowth func(ctx context.Context, counts map[string]int32, grown []Growth),
) *Watcher {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		c:        c,
		topics:   slices.Sorted(maps.Keys(initial)),
		interval: interval,
		logger:   logger,
		onGrowth: onGrowth,
		last:     maps.Clone(initial),
	}
}

// Run polls until ctx is done.
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

// Poll reads the counts once and reports growth. Run calls it every
// interval; it is exported for callers that want to check now.
func (w *Watcher) Poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, w.interval+10*time.Second)
	counts, err := w.c.PartitionCounts(pctx, w.topics)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("polykafka: partition discovery poll failed", "err", err)
		}
		return
	}
	var grown []Growth
	now := time.Now()
	for _, topic := range w.topics {
		n, ok := counts[topic]
		if !ok {
			continue
		}
		prev := w.last[topic]
		switch {
		case n > prev:
			grown = append(grown, Growth{Topic: topic, From: prev, To: n, Seen: now})
		case n < prev:
			w.logger.Warn("polykafka: topic has fewer partitions than before; was it recreated?", "topic", topic, "from", prev, "to", n)
		}
		w.last[topic] = n
	}
	if len(grown) > 0 {
		w.onGrowth(ctx, maps.Clone(w.last), grown)
	}
}
