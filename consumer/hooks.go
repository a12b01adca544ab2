package consumer

import (
	"context"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/discovery"
)

// HookStartDecision is called once per assigned partition with the
// decision of where it starts, after the decision was stored and before the
// first record of the partition is handed out.
//
// What holds for every hook (this one, [HookAssigned], [HookRevoking], [HookRevoked],
// [HookLost], [HookPartitionsDiscovered] and [HookCommit]): hooks are small
// interfaces; a value in [Options.Hooks] implements any number of them. New
// hooks may be added without breaking existing values. Hooks are called
// synchronously from the consumer's internal goroutines (rebalance hooks
// from inside the backend's rebalance callback) and must return quickly.
// They must not call the Consumer's Close, Commit, Pause or Resume: cancel
// Run's context instead.
//
// Concurrency: the rebalance hooks (HookStartDecision, HookAssigned,
// HookRevoking, HookRevoked, HookLost) never run concurrently with each other or
// themselves. HookCommit may run concurrently with the rebalance hooks and
// with itself: commits come from the periodic commit loop, from Commit,
// from revocation and from Close. HookPartitionsDiscovered runs on the
// partition discovery goroutine, concurrently with any other hook. A value
// implementing several hooks guards its own state.
type HookStartDecision interface {
	OnStartDecision(d discovery.Decision)
}

// HookAssigned is called after partitions were assigned and their start
// decisions stored, before their first record is handed out. Under the
// classic protocol a rebalance revokes every partition and assigns the new
// set, so tps is the member's whole assignment; under KIP-848
// ([GroupProtocolConsumer]) tps are only the partitions added, and the
// member's other partitions go on being read. HookRevoked and HookLost
// likewise receive only the partitions taken from the member.
type HookAssigned interface {
	OnPartitionsAssigned(ctx context.Context, tps []polykafka.TopicPartition)
}

// HookRevoking is called when partitions are about to be revoked cleanly
// (a rebalance, or Close), before their processed offsets are committed:
// an application that hands records to its own workers finishes the
// records of tps there and marks them (Mark), so that the revoke commit
// includes them and the next owner does not process them again. ctx ends
// when the revoke must go on (about 10s); the group waits for the call, so
// it should return well within the rebalance timeout. Handlers of Run and
// RunBatch need no such hook: their records are processed one at a time
// and the commit follows the last one that returned.
type HookRevoking interface {
	OnPartitionsRevoking(ctx context.Context, tps []polykafka.TopicPartition)
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

// HookCommitted is HookCommit with the time the commit took: called after
// every commit of processed offsets, like HookCommit, with the same
// concurrency.
type HookCommitted interface {
	OnCommitted(c CommitResult)
}

// CommitResult is one commit of processed offsets, as [HookCommitted]
// sees it.
type CommitResult struct {
	// Offsets are the offsets committed (next offset to consume per
	// partition). The map is the hook's to read, not to keep or modify.
	Offsets map[polykafka.TopicPartition]int64
	// Duration is how long the store took.
	Duration time.Duration
	// Err is the commit's error, or nil.
	Err error
}

// HookHandler wraps the handler of Run: Run calls WrapHandler once when it
// starts and uses the handler returned, so the wrapper runs around every
// call of the handler for one record, retries included, with the record
// and the context the handler gets, whatever runs the handler. A tracing
// package starts a span here and passes the span's context on; a metrics
// package times the call. The wrapper returns what the wrapped handler
// returns (or its own error, which counts as the handler's) and must be
// safe for concurrent use. Several HookHandler values nest in the order of
// Options.Hooks, the first outermost. Poll hands records to no handler:
// these hooks do not see its records.
type HookHandler interface {
	WrapHandler(h Handler) Handler
}

// HookBatchHandler is HookHandler for RunBatch: the wrapper runs around
// every call of the batch handler.
type HookBatchHandler interface {
	WrapBatchHandler(h BatchHandler) BatchHandler
}

func isHook(h any) bool {
	switch h.(type) {
	case HookStartDecision, HookAssigned, HookRevoking, HookRevoked, HookLost, HookPartitionsDiscovered, HookCommit,
		HookCommitted, HookHandler, HookBatchHandler:
		return true
	}
	return false
}

func (c *Consumer) eachHook(fn func(h any)) {
	for _, h := range c.s.Hooks {
		fn(h)
	}
}

// wrapHandler applies the HookHandler values to h, the first outermost.
func (c *Consumer) wrapHandler(h Handler) Handler {
	for i := len(c.s.Hooks) - 1; i >= 0; i-- {
		if w, ok := c.s.Hooks[i].(HookHandler); ok {
			h = w.WrapHandler(h)
		}
	}
	return h
}

// wrapBatchHandler applies the HookBatchHandler values to h, the first
// outermost.
func (c *Consumer) wrapBatchHandler(h BatchHandler) BatchHandler {
	for i := len(c.s.Hooks) - 1; i >= 0; i-- {
		if w, ok := c.s.Hooks[i].(HookBatchHandler); ok {
			h = w.WrapBatchHandler(h)
		}
	}
	return h
}
