package franz_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/offsetstore/storetest"
)

// anchorHandler is the smallest driver.GroupHandler: it starts every
// assigned partition at offset 0 and reports that an assignment happened,
// which proves the member belongs to the group's current generation.
type anchorHandler struct {
	once     sync.Once
	assigned chan struct{} // closed at the first Assigned call
}

func newAnchorHandler() *anchorHandler {
	return &anchorHandler{assigned: make(chan struct{})}
}

func (h *anchorHandler) Assigned(_ context.Context, tps []polykafka.TopicPartition) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset, len(tps))
	for _, tp := range tps {
		out[tp] = polykafka.CommittedOffset{Offset: 0}
	}
	h.once.Do(func() { close(h.assigned) })
	return out, nil
}

func (*anchorHandler) Revoked(context.Context, []polykafka.TopicPartition) {}
func (*anchorHandler) Lost(context.Context, []polykafka.TopicPartition)    {}

// TestKafkaStoreConformance runs the offsetstore conformance suite against
// offsetstore.Kafka on a franz consumer. The broker accepts commits only
// from a member of the group's current generation, so each store gets a
// group of its own whose single member is subscribed to an anchor topic,
// and the store is handed out once that member has been assigned. The
// member then commits for topics it is not subscribed to, which Kafka
// allows.
func TestKafkaStoreConformance(t *testing.T) {
	cluster := testcluster.New(t)
	storetest.Run(t,
		func(t *testing.T) (offsetstore.Store, string) {
			group := cluster.Group(t)
			anchor := cluster.Topic(t, 1)
			h := newAnchorHandler()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d, err := testBackend(t, cluster.Brokers()).OpenConsumer(ctx, driver.ConsumerConfig{
				Group:   group,
				Topics:  []string{anchor},
				Handler: h,
				Logger:  slog.New(slog.DiscardHandler),
			})
			require.NoError(t, err, "OpenConsumer")
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := d.Close(ctx); err != nil {
					t.Logf("closing the anchor member of %s: %v", group, err)
				}
			})

			select {
			case <-h.assigned:
			case <-ctx.Done():
				t.Fatalf("the anchor member of %s was not assigned %s within 30s", group, anchor)
			}
			return offsetstore.NewKafka(group, d), group
		},
		func(t *testing.T, partitions int32) string {
			return cluster.Topic(t, partitions)
		},
	)
}
