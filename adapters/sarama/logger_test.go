package polysarama

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggerBridge(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	unregister := registerLogger(l)
	require.True(t, bridgeOn, "the bridge replaces sarama's default logger")
	sarama.Logger.Printf("polysarama-test %d\n", 1)
	unregister()
	unregister() // idempotent
	sarama.Logger.Println("polysarama-test", 2)
	out := buf.String()
	assert.Contains(t, out, `level=DEBUG msg="sarama: polysarama-test 1"`, "sarama's lines reach every open client's logger at debug level")
	assert.False(t, strings.Contains(out, "polysarama-test 2"), "a closed client's logger gets nothing more")
}
