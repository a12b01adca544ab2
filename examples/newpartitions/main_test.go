package main

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/discovery"
)

func TestCheckFlags(t *testing.T) {
	for _, tc := range []struct {
		duration time.Duration
		rate     int
		interval time.Duration
		flag     string // named in the error; "" for valid flags
	}{
		{10 * time.Second, 200, 2 * time.Second, ""},
		{time.Second, 1, time.Millisecond, ""},
		{time.Second, maxRate, time.Second, ""},
		{0, 200, time.Second, "-duration"},
		{-time.Second, 200, time.Second, "-duration"},
		{time.Second, 0, time.Second, "-rate"},
		{time.Second, -5, time.Second, "-rate"},
		{time.Second, maxRate + 1, time.Second, "-rate"},
		{time.Second, 2_000_000_000, time.Second, "-rate"}, // used to panic in NewTicker
		{time.Second, 200, 0, "-discovery"},                // used to mean the default silently
		{time.Second, 200, -time.Second, "-discovery"},
	} {
		err := checkFlags(tc.duration, tc.rate, tc.interval)
		if tc.flag == "" {
			assert.NoError(t, err, "checkFlags(%v, %d, %v)", tc.duration, tc.rate, tc.interval)
			// Every accepted rate must give NewTicker a positive interval.
			assert.Positive(t, time.Second/time.Duration(tc.rate))
			continue
		}
		if assert.Error(t, err, "checkFlags(%v, %d, %v) must be rejected", tc.duration, tc.rate, tc.interval) {
			assert.True(t, strings.HasPrefix(err.Error(), tc.flag+" "), "the error %q must name %s", err, tc.flag)
		}
	}
}

func TestRateShortfall(t *testing.T) {
	assert.Empty(t, rateShortfall(2000, 10*time.Second, 200), "the requested rate was reached")
	assert.Empty(t, rateShortfall(1850, 10*time.Second, 200), "within 10% of the requested rate is not reported")
	msg := rateShortfall(1000, 10*time.Second, 200)
	assert.Contains(t, msg, "100 records/s", "a shortfall over 10% must be reported with the achieved rate")
	assert.Contains(t, msg, "requested 200")
}

// TestReport replays the decisions of a run: p0 and p1 start at offset 10
// (initial policy), the topic grows, p2 and p3 start at 0 (new-partition),
// and the rebalance that follows re-decides p0 and p1 from their commits.
func TestReport(t *testing.T) {
	d := &demo{out: io.Discard, acked: make(map[string]int32), seen: make(map[string]bool)}
	tp := func(p int32) polykafka.TopicPartition { return polykafka.TopicPartition{Topic: "orders", Partition: p} }
	for p := int32(0); p < before; p++ {
		d.OnStartDecision(discovery.Decision{TopicPartition: tp(p), Offset: 10, Reason: discovery.ReasonInitial, Policy: discovery.Latest})
	}
	created := time.Now()
	for p := int32(before); p < after; p++ {
		d.parts[p].created = created
		d.OnStartDecision(discovery.Decision{TopicPartition: tp(p), Offset: 0, Reason: discovery.ReasonNewPartition, Policy: discovery.Earliest})
	}
	for p := int32(0); p < before; p++ {
		d.OnStartDecision(discovery.Decision{TopicPartition: tp(p), Offset: 377, Reason: discovery.ReasonCommitted})
	}
	for p := range d.parts {
		d.parts[p].firstAt.Store(created.Add(1500 * time.Millisecond).UnixNano())
	}

	var out bytes.Buffer
	require.NoError(t, d.report(&out))
	rows := tableRows(out.String())
	for _, p := range []string{"0", "1"} {
		require.Contains(t, rows, p, "no row for partition %s in %q", p, out.String())
		assert.Equal(t, []string{"10", "initial", "1"}, rows[p][4:7], "partition %s: the table must show where the group first started it, and count the later decisions", p)
		assert.Equal(t, "-", rows[p][7], "partition %s existed before the run: no creation-to-first-record time", p)
	}
	for _, p := range []string{"2", "3"} {
		require.Contains(t, rows, p, "no row for partition %s in %q", p, out.String())
		assert.Equal(t, []string{"0", "new-partition", "0", "1.5s"}, rows[p][4:8], "partition %s was created during the run", p)
	}
}

// tableRows returns the rows of report's table keyed by partition.
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		// partition produced consumed lost started-at reason later latency
		if f := strings.Fields(line); len(f) == 8 && f[0] != "partition" {
			rows[f[0]] = f
		}
	}
	return rows
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunEmbedded runs the demo end to end on an embedded cluster: nothing
// is lost, and the creation-to-first-record time is shown only for the
// partitions created during the run.
func TestRunEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a few seconds")
	}
	var out lockedBuffer
	err := run(t.Context(), &out, "", "franz", 3*time.Second, 100, 300*time.Millisecond, false)
	t.Log(out.String())
	require.NoError(t, err)
	rows := tableRows(out.String())
	for p := range after {
		row := rows[strconv.Itoa(p)]
		require.NotNil(t, row, "no row for partition %d", p)
		if p < before {
			assert.Equal(t, []string{"10", "initial"}, row[4:6], "partition %d: the group first started it at latest, after the 10 old records", p)
			assert.Equal(t, "-", row[7], "partition %d existed before the run: no creation-to-first-record time", p)
		} else {
			assert.Equal(t, []string{"0", "new-partition"}, row[4:6], "partition %d was created during the run", p)
			assert.NotEqual(t, "-", row[7], "partition %d was created during the run: its creation-to-first-record time is shown", p)
		}
	}
}
