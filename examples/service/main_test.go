package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metricSum sums the samples of the metric name (without labels) in a
// Prometheus text scrape.
func metricSum(scrape, name string) (float64, bool) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(scrape))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// nativePrefix is how each adapter's bridge prefixes its client's own log
// messages; confluent adds itself under cgo.
var nativePrefix = map[string]string{"franz": "kgo: ", "sarama": "sarama: ", "kafkago": "kafka-go: "}

// TestRunEmbedded runs the service on an embedded cluster on every backend,
// waits until it is healthy and has processed records, scrapes /metrics,
// then shuts it down as SIGTERM does and checks that what was processed
// was committed, and that the client's own logs reached the JSON logger.
func TestRunEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the service for a few seconds per backend")
	}
	for backend, prefix := range nativePrefix {
		t.Run(backend, func(t *testing.T) { testRunEmbedded(t, backend, prefix) })
	}
}

func testRunEmbedded(t *testing.T, backend, nativePrefix string) {
	var out, logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrCh := make(chan string, 1)
	type result struct {
		sum summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := run(ctx, config{backend: backend, addr: "127.0.0.1:0", rate: 200}, &out, logger, func(a string) { addrCh <- a })
		done <- result{s, err}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case r := <-done:
		t.Fatalf("the service stopped before serving: %v\n%s", r.err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not serve within 60s")
	}
	base := "http://" + addr
	assert.Contains(t, out.String(), "curl -s "+base+"/metrics", "the service prints the curl commands")

	require.Eventually(t, func() bool { code, _ := get(t, base+"/healthz"); return code == http.StatusOK }, 30*time.Second, 50*time.Millisecond,
		"/healthz answers 200 once partitions are assigned")
	var scrape string
	require.Eventually(t, func() bool {
		_, scrape = get(t, base+"/metrics")
		n, _ := metricSum(scrape, "messaging_client_consumed_messages_total")
		return n >= 50
	}, 30*time.Second, 50*time.Millisecond, "records are consumed and counted on /metrics")
	for _, name := range []string{
		"messaging_client_sent_messages_total", "messaging_client_consumed_messages_total",
		"messaging_process_duration_seconds_count", "messaging_client_operation_duration_seconds_count",
		"polykafka_consumer_start_decisions_total", "polykafka_consumer_rebalances_total",
		"polykafka_consumer_records_in_flight", "polykafka_consumer_lag",
	} {
		_, ok := metricSum(scrape, name)
		assert.True(t, ok, "/metrics has %s", name)
	}
	decisions, _ := metricSum(scrape, "polykafka_consumer_start_decisions_total")
	assert.Equal(t, float64(partitions), decisions, "one start decision per partition")
	code, body := get(t, base+"/lag")
	assert.Equal(t, http.StatusOK, code, "/lag: %s", body)
	assert.Contains(t, body, `"Partition": 2`, "/lag lists every assigned partition")

	cancel() // what SIGTERM does
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not stop within 60s of SIGTERM")
	}
	require.NoError(t, r.err)
	t.Logf("summary: %+v", r.sum)
	assert.Positive(t, r.sum.Processed)
	assert.Equal(t, r.sum.Processed, r.sum.Committed, "the shutdown commits exactly the processed records")
	assert.Contains(t, out.String(), "after shutdown:", "the service prints the group's lag after the shutdown")

	// Every log line is JSON, and the client's own logs are among them.
	native := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "a log line is JSON: %s", line)
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, nativePrefix) {
			native++
		}
	}
	assert.Positive(t, native, "the client's own logs (%q...) are routed into the service's JSON logger", nativePrefix)
}

func TestHealth(t *testing.T) {
	var h health
	check := func(want int, why string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		assert.Equal(t, want, rec.Code, why)
	}
	check(http.StatusServiceUnavailable, "not ready before any partition is assigned")
	h.OnPartitionsAssigned(context.Background(), nil)
	check(http.StatusServiceUnavailable, "an empty assignment is not ready")
	h.assigned.Store(2)
	check(http.StatusOK, "ready once partitions are assigned")
	h.stopping.Store(true)
	check(http.StatusServiceUnavailable, "failing once the shutdown began")
}

func TestBadFlags(t *testing.T) {
	_, err := run(t.Context(), config{backend: "franz", rate: 0}, io.Discard, slog.New(slog.DiscardHandler), nil)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "-rate "), "the error names the flag: %v", err)
	_, err = run(t.Context(), config{backend: "nope", rate: 1, addr: "127.0.0.1:0"}, io.Discard, slog.New(slog.DiscardHandler), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-backend", "the error names the flag: %v", err)
}
