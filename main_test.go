package polykafka_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the examples and tests: every
// consumer and producer they open is closed, and Close stops everything it
// started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
