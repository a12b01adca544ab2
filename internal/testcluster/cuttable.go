package testcluster

import (
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/polykafka/polykafka/internal/netcut"
)

// StartCuttable is NewCuttable for programs (internal/cmd/soak), which have
// no testing.TB: an in-process cluster whatever KAFKA_BROKERS says, and the
// switch that cuts and restores its connections. The caller closes the
// cluster.
func StartCuttable() (*Cluster, *netcut.Switch, error) {
	sw := netcut.NewSwitch()
	c, err := startOn(nil, "250", kfake.ListenFn(sw.Listen))
	if err != nil {
		return nil, nil, err
	}
	return c, sw, nil
}
