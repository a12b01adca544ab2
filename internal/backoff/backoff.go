// Package backoff is polykafka's one retry schedule: jittered exponential,
// as franz-go's default RetryBackoffFn (kgo/config.go). The portable layer
// waits with it wherever it retries; adapters that must loop in place of
// their client use it with their client's own configured bounds.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Schedule is a jittered exponential backoff between Min and Max: the wait
// after the n-th consecutive failure is min(Min·2^(n-1), Max), times a
// random factor in [0.8, 1.2), and never more than Max (so at the cap the
// waits still spread, below Max). A Max below Min is Min.
type Schedule struct {
	Min, Max time.Duration
}

// Delay returns the wait after fails consecutive failures (fails < 1 is
// taken as 1).
func (s Schedule) Delay(fails int) time.Duration {
	maxD := max(s.Max, s.Min)
	if s.Min <= 0 {
		return 0
	}
	d := s.Min
	for i := 1; i < fails && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, maxD)
}

// Wait waits Delay(fails), or until ctx is done; it reports whether it
// waited the whole delay (false: ctx is done).
func (s Schedule) Wait(ctx context.Context, fails int) bool {
	return Sleep(ctx, s.Delay(fails))
}

// Sleep waits d, or until ctx is done; it reports whether it waited the
// whole of d (false: ctx is done).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
