package driver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAwaitLeaderMetadataRefreshesUntilFresh(t *testing.T) {
	refreshes := 0
	var waits []int
	ok := AwaitLeaderMetadata(
		func() bool { return refreshes >= 3 },
		func() { refreshes++ },
		func(n int) time.Duration { waits = append(waits, n); return time.Millisecond },
	)
	assert.True(t, ok)
	assert.Equal(t, 3, refreshes, "refreshes until fresh, then stops")
	assert.Equal(t, []int{1, 2}, waits, "waits the client's backoff after each refresh that did not help, counting them")

	calls := 0
	assert.True(t, AwaitLeaderMetadata(func() bool { return true }, func() { calls++ }, nil), "fresh at once: no refresh, no wait")
	assert.Zero(t, calls)
}
