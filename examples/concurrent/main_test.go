package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a bytes.Buffer safe for the demo's concurrent writes.
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

func TestCheckFlags(t *testing.T) {
	ok := config{records: 10, partitions: 3, latency: time.Millisecond, concurrency: 4, modes: "serial"}
	require.NoError(t, ok.check())
	for flag, c := range map[string]config{
		"-records":     {records: 0, partitions: 3, concurrency: 4},
		"-partitions":  {records: 10, partitions: 0, concurrency: 4},
		"-latency":     {records: 10, partitions: 3, latency: -time.Second, concurrency: 4},
		"-concurrency": {records: 10, partitions: 3, concurrency: 0},
	} {
		err := c.check()
		if assert.Error(t, err, flag) {
			assert.True(t, strings.HasPrefix(err.Error(), flag+" "), "the error %q names %s", err, flag)
		}
	}
	_, err := parseModes("serial,Sideways", 4)
	if assert.Error(t, err) {
		assert.Contains(t, err.Error(), "-modes")
	}
}

// TestRunEmbedded runs the demo briefly on an embedded cluster: every mode
// reads every record, and the summary has a row per mode.
func TestRunEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a few seconds")
	}
	var out lockedBuffer
	err := run(t.Context(), &out, config{backend: "franz", records: 300, partitions: 4, latency: 2 * time.Millisecond,
		concurrency: 16, modes: "serial,ByPartition,ByKey,Unordered"})
	t.Log(out.String())
	require.NoError(t, err)
	for _, m := range []string{"serial", "ByPartition", "ByKey", "Unordered"} {
		assert.Contains(t, out.String(), m+": 300 records in", "mode %s read every record", m)
	}
	assert.Contains(t, out.String(), "vs serial", "the summary table is printed")
}
