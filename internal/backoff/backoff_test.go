package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDelayBoundsGrowthJitterCap(t *testing.T) {
	s := Schedule{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	for fails := 0; fails <= 12; fails++ {
		base := s.Min << max(fails-1, 0)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := s.Delay(fails)
			seen[d] = true
			if base >= s.Max {
				assert.LessOrEqual(t, d, s.Max, "fails %d: capped at Max", fails)
				assert.GreaterOrEqual(t, d, time.Duration(float64(s.Max)*0.8), "fails %d: at the cap, within the jitter below Max", fails)
				continue
			}
			assert.GreaterOrEqual(t, d, time.Duration(float64(base)*0.8), "fails %d: at least 0.8 of Min·2^(fails-1)", fails)
			assert.Less(t, d, time.Duration(float64(base)*1.2)+1, "fails %d: under 1.2 of Min·2^(fails-1)", fails)
		}
		assert.Greater(t, len(seen), 50, "fails %d: the delay is jittered", fails)
	}
	// Growth: the mean doubles while under the cap.
	mean := func(fails int) time.Duration {
		var sum time.Duration
		for range 1000 {
			sum += s.Delay(fails)
		}
		return sum / 1000
	}
	m1, m2, m3 := mean(1), mean(2), mean(3)
	assert.InDelta(t, 2.0, float64(m2)/float64(m1), 0.15)
	assert.InDelta(t, 2.0, float64(m3)/float64(m2), 0.15)
	assert.LessOrEqual(t, s.Delay(1000), s.Max, "a huge failure count does not overflow past Max")
}

func TestDelayDegenerate(t *testing.T) {
	assert.Zero(t, Schedule{}.Delay(3), "no Min: no wait")
	d := Schedule{Min: time.Second}.Delay(5)
	assert.LessOrEqual(t, d, time.Second, "Max below Min is Min")
	assert.GreaterOrEqual(t, d, 800*time.Millisecond)
}

func TestWaitStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, Schedule{Min: time.Hour, Max: time.Hour}.Wait(ctx, 1), "a done ctx ends the wait")
	assert.True(t, Schedule{Min: time.Millisecond, Max: time.Millisecond}.Wait(context.Background(), 1))
}
