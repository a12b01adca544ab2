package consumer

import (
	"context"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/discovery"
)

// HookStartDecision is called once per assigned partition with the
// decision of where it starts, after the decision was stored and before the
// first record of the partition is handed out.
//
// What holds for every hook (this one, [HookAssigned], [HookRevoked],
// [HookLost], [HookPartitionsDiscovered] and [HookCommit]): hooks are small
// interfaces; a value in [Options.Hooks] implements any number of them. New
// hooks may be added without breaking existing values. Hooks are called
// synchronously from the consumer's internal goroutines (rebalance hooks
// from inside the backend's rebalance callback) and must return quickly.
// They must not call the Consumer's Close, Commit, Pause or Resume: cancel
// Run's context instead.
//
// Concurrency: the rebalance hooks (HookStartDecision, HookAssigned,
// HookRevoked, HookLost) never run concurrently with each other or
// themselves. HookCommit may run concurrently with the rebalance hooks and
// with itself: commits come from the periodic commit loop, from Commit,
// from revocation and from Close. HookPartitionsDiscovered runs on the
// partition discovery goroutine, concurrently with any other hook. A value
// implementing several hooks guards its own state.
type HookStartDecision interface {
	OnStartDecision(d discovery.Decision)
}

// HookAssigned is called after partitions were assigned and their start
// decisions stored, before their first record is handed out.
type HookAssigned interface {
	OnPartitionsAssigned(ctx context.Context, tps []polykafka.TopicPartition)
}

// HookRevoked is called when partitions are revoked cleanly, after their
// processed offsets were committed.
type HookRevoked interface {
	OnPartitionsRevoked(ctx context.Context, tps []polykafka.TopicPartition)
}

// HookLost is called when partitions were lost (session expiry); their
// uncommitted progress is processed again by the next owner.
type HookLost interface {
	OnPartitionsLost(ctx context.Context, tps []polykafka.TopicPartition)
}

// HookPartitionsDiscovered is called when partition discovery sees a topic
// grow, before the group is asked to rebalance.
type HookPartitionsDiscovered interface {
	OnPartitionsDiscovered(g discovery.Growth)
}

// HookCommit is called after every commit of processed offsets with the
// offsets (next offset to consume per partition) and the error, if any.
type HookCommit interface {
	OnCommit(offsets map[polykafka.TopicPartition]int64, err error)
}

func isHook(h any) bool {
	switch h.(type) {
	case HookStartDecision, HookAssigned, HookRevoked, HookLost, HookPartitionsDiscovered, HookCommit:
		return true
	}
	return false
}

func (c *Consumer) eachHook(fn func(h any)) {
	for _, h := range c.s.Hooks {
		fn(h)
	}
}
