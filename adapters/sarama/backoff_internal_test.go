package polysarama

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
)

// TestMetadataBackoffHonoursConfig: where the adapter waits for leader
// metadata in place of sarama, it waits as sarama's own Metadata.Retry
// says: BackoffFunc when set, Backoff otherwise.
func TestMetadataBackoffHonoursConfig(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Metadata.Retry.Backoff = 37 * time.Millisecond
	wait := metadataBackoff(cfg)
	assert.Equal(t, 37*time.Millisecond, wait(1))
	assert.Equal(t, 37*time.Millisecond, wait(5))

	cfg.Metadata.Retry.Max = 9
	cfg.Metadata.Retry.BackoffFunc = func(n, max int) time.Duration {
		return time.Duration(n*max) * time.Millisecond
	}
	wait = metadataBackoff(cfg)
	assert.Equal(t, 9*time.Millisecond, wait(1))
	assert.Equal(t, 27*time.Millisecond, wait(3))
}
