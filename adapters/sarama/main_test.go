package polysarama

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-metrics starts one process-wide meter goroutine the first
		// time any sarama client registers a meter; it is never stopped
		// and belongs to no client.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	)
}
