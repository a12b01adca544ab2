//go:build cgo

package confluent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// pollSlice bounds one kafka.Consumer.Poll call: Poll takes no context, so
// Fetch polls in slices of at most this long and checks its context in
// between. Other calls that must not overlap a Poll (Close, the
// resubscription of Rejoin) wait at most this long.
const pollSlice = 50 * time.Millisecond

// idleBuffer bounds the records the idle poller buffers for the next
// Fetch; beyond it, it stops polling (and rebalances wait for the next
// Fetch, as they do with librdkafka when the application does not poll).
const idleBuffer = 10000

type consumer struct {
	cluster
	kc       *kafka.Consumer
	h        driver.GroupHandler
	group    string
	topics   []string
	stable   bool // Committed asks for stable offsets (ReadCommitted, KIP-447)
	log      *slog.Logger
	logsDone <-chan struct{}

	// ctx is the context of GroupHandler calls. Close cancels it when its
	// own context ends, so that Revoked honours Close's deadline.
	ctx    context.Context
	cancel context.CancelFunc

	// pollMu is held around every Poll (the rebalance callback runs inside
	// Poll) and around subscription changes: the binding keeps the
	// callback and its "did the application assign" flag in plain fields.
	pollMu sync.Mutex
	// Guarded by pollMu (the rebalance callback runs with it held):
	active     map[polykafka.TopicPartition]bool  // assigned with a start decision
	owned      []polykafka.TopicPartition         // the group's assignment to this member
	rebalanced bool                               // a rebalance callback ran during the current Fetch
	pending    error                              // an error of the rebalance callback, for the next Fetch
	buffered   []polykafka.Record                 // polled by the idle poller, for the next Fetch
	starts     map[polykafka.TopicPartition]int64 // the offsets Assign started active partitions at
	// inClose is set just before kafka.Consumer.Close and lateRebalances
	// counts rebalance events run from inside it: settle's job is that
	// there are none (librdkafka#4884).
	inClose        bool
	lateRebalances int

	lastFetch atomic.Int64  // UnixNano of the end of the last Fetch poll
	stopIdle  chan struct{} // closed by Close: the idle poller stops
	idleDone  chan struct{} // closed when the idle poller has stopped

	// kip848: group.protocol=consumer. Rebalances are incremental: the
	// callback gets only the partitions added or taken, and answers with
	// IncrementalAssign / IncrementalUnassign.
	kip848 bool

	// failed (KIP-848, guarded by pollMu): partitions whose Assigned
	// failed. They are assigned to librdkafka paused (the binding would
	// otherwise assign them itself), and Rejoin decides them again.
	failed map[polykafka.TopicPartition]bool

	rejoin     atomic.Bool // Rejoin asked for a resubscription
	pauseMu    sync.Mutex
	paused     map[polykafka.TopicPartition]bool // through Pause, for reassign
	inCallback atomic.Bool                       // the rebalance callback is running (with pollMu held)
	closing    atomic.Bool
}

var (
	_ driver.Consumer    = (*consumer)(nil)
	_ driver.Pauser      = (*consumer)(nil)
	_ driver.GroupMember = (*consumer)(nil)
	_ driver.Seeker      = (*consumer)(nil)
)

// consumerConfig returns the consumer's librdkafka configuration: the
// connection, the application's ConfigMap, then what carries polykafka's
// semantics, which cannot be overridden.
func (b *Backend) consumerConfig(cfg driver.ConsumerConfig) (kafka.ConfigMap, error) {
	m, err := b.baseConfig("OpenConsumer")
	if err != nil {
		return nil, err
	}
	iso := "read_uncommitted"
	if cfg.ReadCommitted {
		iso = "read_committed"
	}
	for k, v := range map[string]kafka.ConfigValue{
		"group.id":                 cfg.Group,
		"enable.auto.commit":       false,
		"enable.auto.offset.store": false,
		// Every assigned partition gets an explicit offset; a fetch out of
		// range is an error for the portable layer, never a reset.
		"auto.offset.reset":    "error",
		"isolation.level":      iso,
		"enable.partition.eof": false,
		// Rebalances go through the adapter's callback, inside Poll.
		"go.application.rebalance.enable": false,
		"go.events.channel.enable":        false,
	} {
		m[k] = v
	}
	// A fetch in flight holds its broker connection for up to
	// fetch.wait.max.ms (500 ms by default) when no records come:
	// kafka.Consumer.Close waits for it, and so do the metadata requests
	// queued behind it on that connection (PartitionCounts), which Close
	// waits for in turn. A shorter wait keeps Close of one member near
	// the other backends' (tens of milliseconds), for at most ten empty
	// fetches a second per broker while idle. The application's ConfigMap
	// may set it.
	if _, set := m["fetch.wait.max.ms"]; !set {
		m["fetch.wait.max.ms"] = fetchWaitMs
	}
	if cfg.GroupProtocol == driver.GroupProtocolConsumer {
		// KIP-848 (early access in librdkafka 2.11): the coordinator
		// assigns with its "range" assignor, as kgo's KIP-848 members
		// ask for; the client-side strategy does not apply.
		m["group.protocol"] = "consumer"
		m["group.remote.assignor"] = "range"
	} else {
		m["partition.assignment.strategy"] = "range"
	}
	return m, nil
}

// fetchWaitMs is the consumer's default fetch.wait.max.ms: see
// consumerConfig.
const fetchWaitMs = 100

// OpenConsumer implements driver.Backend.
func (b *Backend) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := b.consumerConfig(cfg)
	if err != nil {
		return nil, err
	}
	kc, err := kafka.NewConsumer(&m)
	if err != nil {
		return nil, opErr(polykafka.InvalidArgument, "OpenConsumer", err)
	}
	c := &consumer{
		cluster:  cluster{md: kc},
		kc:       kc,
		h:        cfg.Handler,
		group:    cfg.Group,
		topics:   append([]string(nil), cfg.Topics...),
		stable:   cfg.ReadCommitted,
		log:      cfg.Logger,
		active:   make(map[polykafka.TopicPartition]bool),
		starts:   make(map[polykafka.TopicPartition]int64),
		paused:   make(map[polykafka.TopicPartition]bool),
		stopIdle: make(chan struct{}),
		idleDone: make(chan struct{}),
		kip848:   cfg.GroupProtocol == driver.GroupProtocolConsumer,
		failed:   make(map[polykafka.TopicPartition]bool),
	}
	c.logsDone = startLogs(m, cfg.Logger, kc.Logs())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.adm, err = kafka.NewAdminClientFromConsumer(kc); err == nil {
		err = kc.SubscribeTopics(c.topics, c.rebalance)
	}
	if err != nil {
		c.cancel()
		_ = kc.Close()
		<-c.logsDone
		return nil, err
	}
	go c.idlePoller(c.stopIdle, c.idleDone)
	return c, nil
}

// rebalance is the rebalance callback; it runs inside Poll, with pollMu
// held (Fetch or Close). librdkafka applies nothing until it returns: on
// assignment, the portable layer's offsets are applied with Assign before
// anything is fetched; on revocation, the handler's Revoked (or Lost) runs
// before Unassign, so that its commits are made while the member still
// owns the partitions.
func (c *consumer) rebalance(kc *kafka.Consumer, ev kafka.Event) error {
	c.rebalanced = true
	if c.inClose {
		c.lateRebalances++
		c.log.Warn("polykafka: confluent: a rebalance event ran inside librdkafka's close", "event", ev.String())
	}
	c.inCallback.Store(true)
	defer c.inCallback.Store(false)
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		if c.closing.Load() && !c.kip848 {
			// Close has unsubscribed: an assignment applied now came
			// from an event queued before the unsubscription's
			// revocation, and no revocation follows it, so Close would
			// wait for it to go until its deadline. Apply none (the
			// binding would apply e.Partitions if the callback did not
			// assign) and own nothing.
			if err := kc.Assign(nil); err != nil {
				c.pending = errors.Join(c.pending, describe("assign", err))
			}
			return nil
		}
		tps := make([]polykafka.TopicPartition, len(e.Partitions))
		for i, p := range e.Partitions {
			tps[i] = topicPartition(p)
		}
		if c.kip848 {
			c.owned = append(c.owned, tps...)
		} else {
			c.owned = tps
		}
		offs, err := c.h.Assigned(c.ctx, tps)
		// Assign is called whatever happens: if the callback does not
		// assign, the binding assigns e.Partitions itself, at librdkafka's
		// committed offsets or auto.offset.reset. Partitions without a
		// decision stay assigned in the group and idle here.
		assign := make([]kafka.TopicPartition, 0, len(tps))
		if err != nil {
			c.log.Debug("polykafka: confluent: partitions left idle: Assigned failed", "partitions", tps, "err", err)
		} else {
			for _, tp := range tps {
				o, ok := offs[tp]
				if !ok {
					c.log.Warn("polykafka: confluent: partition left idle: Assigned returned no offset for it", "partition", tp)
					continue
				}
				assign = append(assign, nativeTP(tp, kafka.Offset(o.Offset)))
				c.active[tp] = true
				c.starts[tp] = o.Offset
			}
		}
		if c.kip848 {
			c.assignIncremental(kc, tps, assign, err != nil)
			return nil
		}
		if err := kc.Assign(assign); err != nil {
			for _, tp := range tps {
				delete(c.active, tp)
			}
			c.pending = errors.Join(c.pending, describe("assign", err))
		}
	case kafka.RevokedPartitions:
		if c.kip848 {
			c.revokeIncremental(kc, e.Partitions)
			return nil
		}
		tps := make([]polykafka.TopicPartition, len(e.Partitions))
		for i, p := range e.Partitions {
			tps[i] = topicPartition(p)
			delete(c.active, tps[i])
		}
		if kc.AssignmentLost() {
			c.h.Lost(c.ctx, tps)
		} else {
			c.h.Revoked(c.ctx, tps)
		}
		clear(c.active)
		clear(c.starts)
		c.pauseMu.Lock()
		clear(c.paused) // a partition assigned again starts unpaused
		c.pauseMu.Unlock()
		c.buffered = c.dropInactive(c.buffered)
		c.owned = nil
		if err := kc.Unassign(); err != nil {
			c.pending = errors.Join(c.pending, describe("unassign", err))
		}
	}
	return nil
}

// assignIncremental (KIP-848) adds the decided partitions (assign) to the
// assignment. When Assigned failed, the partitions are added paused and
// recorded in failed instead: the coordinator does not assign them again
// while the member keeps them, so Rejoin decides them again
// (retryFailed).
func (c *consumer) assignIncremental(kc *kafka.Consumer, tps []polykafka.TopicPartition, assign []kafka.TopicPartition, failed bool) {
	if failed {
		assign = assign[:0]
		for _, tp := range tps {
			c.failed[tp] = true
			assign = append(assign, nativeTP(tp, kafka.OffsetBeginning))
		}
	}
	err := kc.IncrementalAssign(assign)
	if err == nil && failed {
		err = kc.Pause(assign)
	}
	if err != nil {
		for _, tp := range tps {
			delete(c.active, tp)
		}
		c.pending = errors.Join(c.pending, describe("assign", err))
	}
}

// retryFailed (KIP-848) asks the portable layer again where the partitions
// whose Assigned failed start, and restarts those it decided there. Called
// with pollMu held, so that it never runs with a rebalance callback.
func (c *consumer) retryFailed() {
	tps := make([]polykafka.TopicPartition, 0, len(c.failed))
	for tp := range c.failed {
		tps = append(tps, tp)
	}
	if len(tps) == 0 {
		return
	}
	offs, err := c.h.Assigned(c.ctx, tps)
	if err != nil {
		return // the portable layer calls Rejoin again when it wants to
	}
	start := make(map[polykafka.TopicPartition]int64, len(offs))
	for _, tp := range tps {
		if o, ok := offs[tp]; ok {
			start[tp] = o.Offset
			delete(c.failed, tp)
			c.active[tp] = true
		}
	}
	err = c.reassignIncremental(start)
	if err == nil {
		err = c.kc.Resume(nativeTPs(slices.Collect(maps.Keys(start))))
	}
	if err != nil {
		c.pending = errors.Join(c.pending, describe("assign", err))
	}
}

// revokeIncremental (KIP-848) runs Revoked or Lost for the partitions taken
// from the member and unassigns only them: the others keep being fetched.
func (c *consumer) revokeIncremental(kc *kafka.Consumer, parts []kafka.TopicPartition) {
	tps := make([]polykafka.TopicPartition, len(parts))
	gone := make(map[polykafka.TopicPartition]bool, len(parts))
	// Only partitions with a decision were assigned to librdkafka
	// (IncrementalAssign); unassigning another one is an error.
	var assigned []kafka.TopicPartition
	for i, p := range parts {
		tps[i] = topicPartition(p)
		gone[tps[i]] = true
		if c.active[tps[i]] || c.failed[tps[i]] {
			assigned = append(assigned, p)
		}
		delete(c.active, tps[i])
		delete(c.failed, tps[i])
	}
	if kc.AssignmentLost() {
		c.h.Lost(c.ctx, tps)
	} else {
		c.h.Revoked(c.ctx, tps)
	}
	for _, tp := range tps {
		delete(c.starts, tp)
	}
	c.pauseMu.Lock()
	for _, tp := range tps {
		delete(c.paused, tp) // a partition assigned again starts unpaused
	}
	c.pauseMu.Unlock()
	c.buffered = c.dropInactive(c.buffered)
	c.owned = slices.DeleteFunc(c.owned, func(tp polykafka.TopicPartition) bool { return gone[tp] })
	if len(assigned) == 0 {
		return
	}
	if err := kc.IncrementalUnassign(assigned); err != nil {
		c.pending = errors.Join(c.pending, describe("unassign", err))
	}
}

// Fetch implements driver.Consumer. It first hands out what the idle
// poller buffered, then polls in slices of pollSlice so that it honours
// ctx, then takes what librdkafka has already queued, up to limit.
func (c *consumer) Fetch(ctx context.Context, limit int, buf []polykafka.Record) ([]polykafka.Record, error) {
	out := buf[:0]
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		slice := pollSlice
		if dl, ok := ctx.Deadline(); ok {
			slice = min(slice, max(time.Until(dl), time.Millisecond))
		}
		var err error
		out, err = c.poll(ctx, slice, limit, out)
		if len(out) > 0 || err != nil {
			return out, err
		}
	}
}

// poll hands out buffered records, or runs one Poll of at most slice and
// then Polls without waiting while records are queued, up to limit
// records. It stops at the first error.
func (c *consumer) poll(ctx context.Context, slice time.Duration, limit int, out []polykafka.Record) ([]polykafka.Record, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	defer c.lastFetch.Store(time.Now().UnixNano())
	if c.closing.Load() {
		return out, errClosed
	}
	if c.rejoin.Swap(false) {
		c.resubscribe()
	}
	if len(c.buffered) > 0 {
		n := min(limit, len(c.buffered))
		out = append(out, c.buffered[:n]...)
		clear(c.buffered[:n])
		c.buffered = c.buffered[n:]
		return groupByPartition(out), c.takePending()
	}
	c.rebalanced = false
	var errs []error
	ev := c.kc.Poll(int(slice.Milliseconds()))
	for {
		out, errs = c.event(ctx, ev, out, errs)
		if len(errs) > 0 || len(out) >= limit {
			break
		}
		if ev = c.kc.Poll(0); ev == nil {
			break
		}
	}
	if c.rebalanced {
		// Records taken before a revocation in this call must not be
		// handed out after Revoked returned.
		out = c.dropInactive(out)
	}
	if err := c.takePending(); err != nil {
		errs = append(errs, err)
	}
	return groupByPartition(out), errors.Join(errs...)
}

// event handles one polled event (called with pollMu held): records of
// partitions assigned with a start decision are appended to out, errors to
// errs.
func (c *consumer) event(ctx context.Context, ev kafka.Event, out []polykafka.Record, errs []error) ([]polykafka.Record, []error) {
	switch e := ev.(type) {
	case *kafka.Message:
		tp := topicPartition(e.TopicPartition)
		if e.TopicPartition.Error != nil {
			return out, append(errs, &driver.PartitionError{TopicPartition: tp, Err: e.TopicPartition.Error})
		}
		if c.active[tp] { // else not (or no longer) assigned with a decision here
			out = appendRecord(out, e, tp)
		}
	case kafka.Error:
		c.auth.note(e)
		if e.Code() == kafka.ErrAutoOffsetReset {
			return out, append(errs, c.outOfRange(ctx, e))
		}
		errs = append(errs, e)
	case nil:
	default:
		c.log.Debug("polykafka: confluent: event ignored", "event", e.String())
	}
	return out, errs
}

func (c *consumer) takePending() error {
	err := c.pending
	c.pending = nil
	return err
}

// idlePoller polls while nobody fetches: librdkafka runs rebalance
// callbacks only inside Poll, so without it a member that is not fetching
// (waiting for its first assignment, or between fetches) would hold up
// every rebalance of the group. What it polls is buffered (up to
// idleBuffer records) for the next Fetch.
func (c *consumer) idlePoller(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(pollSlice)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, c.lastFetch.Load())) < pollSlice || !c.pollMu.TryLock() {
			continue // a Fetch is polling
		}
		if !c.closing.Load() && len(c.buffered) < idleBuffer {
			if c.rejoin.Swap(false) {
				c.resubscribe()
			}
			c.rebalanced = false
			var errs []error
			ev := c.kc.Poll(int(pollSlice.Milliseconds()))
			for ev != nil && len(c.buffered) < idleBuffer {
				c.buffered, errs = c.event(c.ctx, ev, c.buffered, errs)
				ev = c.kc.Poll(0)
			}
			if ev != nil {
				c.buffered, errs = c.event(c.ctx, ev, c.buffered, errs)
			}
			if c.rebalanced {
				c.buffered = c.dropInactive(c.buffered)
			}
			if len(errs) > 0 {
				c.pending = errors.Join(append([]error{c.pending}, errs...)...)
			}
		}
		c.pollMu.Unlock()
	}
}

// outOfRange finds the partitions that a librdkafka auto.offset.reset
// error (auto.offset.reset=error) is about: the binding reports it as a
// client error without its partition, and librdkafka has stopped fetching
// that partition. A partition whose position is outside [log start, high
// watermark] is out of range. Called with pollMu held.
func (c *consumer) outOfRange(ctx context.Context, e kafka.Error) error {
	var tps []polykafka.TopicPartition
	for tp := range c.active {
		tps = append(tps, tp)
	}
	if len(tps) == 0 {
		return e
	}
	pos, err := c.kc.Position(nativeTPs(tps))
	if err != nil {
		return errors.Join(e, err)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	low, err := c.ListOffsets(lctx, tps, polykafka.OffsetEarliest)
	if err != nil {
		return errors.Join(e, err)
	}
	high, err := c.ListOffsets(lctx, tps, polykafka.OffsetLatest)
	if err != nil {
		return errors.Join(e, err)
	}
	var errs []error
	for _, p := range pos {
		tp := topicPartition(p)
		at := int64(p.Offset)
		if at < 0 {
			at = c.starts[tp]
		}
		if at < low[tp] || at > high[tp] {
			errs = append(errs, &driver.PartitionError{TopicPartition: tp,
				Err: kafka.NewError(kafka.ErrAutoOffsetReset, fmt.Sprintf("%s: offset %d outside [%d, %d]", e.Error(), at, low[tp], high[tp]), false)})
		}
	}
	if len(errs) == 0 {
		return e
	}
	return errors.Join(errs...)
}

func (c *consumer) dropInactive(out []polykafka.Record) []polykafka.Record {
	n := 0
	for _, r := range out {
		if c.active[r.TopicPartition()] {
			out[n] = r
			n++
		}
	}
	clear(out[n:])
	return out[:n]
}

// groupByPartition makes the records of each partition consecutive (the
// contract), keeping their order: librdkafka interleaves partitions
// fetched from different brokers. It does nothing (and allocates nothing)
// when they already are.
func groupByPartition(rs []polykafka.Record) []polykafka.Record {
	grouped := true
	for i := 1; i < len(rs) && grouped; i++ {
		if rs[i].Partition != rs[i-1].Partition || rs[i].Topic != rs[i-1].Topic {
			for j := 0; j < i-1; j++ {
				if rs[j].Partition == rs[i].Partition && rs[j].Topic == rs[i].Topic {
					grouped = false
					break
				}
			}
		}
	}
	if grouped {
		return rs
	}
	order := make(map[polykafka.TopicPartition]int)
	var runs [][]polykafka.Record
	for _, r := range rs {
		tp := r.TopicPartition()
		i, ok := order[tp]
		if !ok {
			i = len(runs)
			order[tp] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], r)
	}
	out := rs[:0]
	for _, run := range runs {
		out = append(out, run...)
	}
	return out
}

// appendRecord appends m (of partition tp) converted to rs. rs is usually
// a reused buffer: the record is written in place one field at a time,
// every field (appending a Record value costs a bulk write barrier per
// record while the GC runs; the root package's Record field test fails
// when Record gains a field this must set).
func appendRecord(rs []polykafka.Record, m *kafka.Message, tp polykafka.TopicPartition) []polykafka.Record {
	rs = slices.Grow(rs, 1)
	rs = rs[:len(rs)+1]
	r := &rs[len(rs)-1]
	r.Topic = tp.Topic
	r.Partition = tp.Partition
	r.Offset = int64(m.TopicPartition.Offset)
	r.Key = m.Key
	r.Value = m.Value
	r.Headers = nil
	if len(m.Headers) > 0 {
		r.Headers = make([]polykafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = polykafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	r.Timestamp = m.Timestamp
	r.Native = m
	return rs
}

// resubscribe makes the group rebalance: librdkafka has no forced rejoin
// and an eager member that rejoins with unchanged metadata gets the current
// generation back, so the member leaves (Unsubscribe: revoke, LeaveGroup)
// and joins again as a new member. Called with pollMu held.
//
// Under KIP-848 nothing is resubscribed: Rejoin is called only to decide
// again the partitions whose Assigned failed, which retryFailed does.
func (c *consumer) resubscribe() {
	if c.kip848 {
		c.retryFailed()
		return
	}
	err := c.kc.Unsubscribe()
	if err == nil {
		err = c.kc.SubscribeTopics(c.topics, c.rebalance)
	}
	if err != nil {
		c.pending = errors.Join(c.pending, describe("resubscribe", err))
	}
}

// Rejoin implements driver.Consumer: see resubscribe. It resubscribes now
// if no Poll is running, else the running Fetch does it after its Poll
// (Rejoin may be called from inside a GroupHandler call, within Poll).
// librdkafka's JoinGroup carries no user data from the application, so
// counts are not sent; the leader reads fresh metadata before it assigns.
func (c *consumer) Rejoin(context.Context, map[string]int32) error {
	if c.closing.Load() {
		return errClosed
	}
	c.rejoin.Store(true)
	if c.pollMu.TryLock() {
		if !c.closing.Load() && c.rejoin.Swap(false) {
			c.resubscribe()
		}
		c.pollMu.Unlock()
	}
	return nil
}

// Commit implements driver.Consumer with CommitOffsets, which is
// synchronous and carries each offset's metadata.
func (c *consumer) Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	tps := nativeOffsets(offsets)
	return c.call(ctx, func() error {
		res, err := c.kc.CommitOffsets(tps)
		if err != nil {
			return err
		}
		var errs []error
		for _, r := range res {
			if r.Error != nil {
				errs = append(errs, &driver.PartitionError{TopicPartition: topicPartition(r), Err: r.Error})
			}
		}
		return errors.Join(errs...)
	})
}

// Committed implements driver.Consumer with the admin API's
// ListConsumerGroupOffsets (all partitions of the group, with metadata).
func (c *consumer) Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	return c.committed(ctx, c.group, topics, c.stable)
}

// Pause implements driver.Pauser.
func (c *consumer) Pause(ctx context.Context, tps []polykafka.TopicPartition) error {
	c.pauseMu.Lock()
	for _, tp := range tps {
		c.paused[tp] = true
	}
	c.pauseMu.Unlock()
	return c.call(ctx, func() error { return c.kc.Pause(nativeTPs(tps)) })
}

// Resume implements driver.Pauser.
func (c *consumer) Resume(ctx context.Context, tps []polykafka.TopicPartition) error {
	c.pauseMu.Lock()
	for _, tp := range tps {
		delete(c.paused, tp)
	}
	c.pauseMu.Unlock()
	return c.call(ctx, func() error { return c.kc.Resume(nativeTPs(tps)) })
}

func nativeTPs(tps []polykafka.TopicPartition) []kafka.TopicPartition {
	out := make([]kafka.TopicPartition, len(tps))
	for i, tp := range tps {
		out[i] = nativeTP(tp, kafka.OffsetInvalid)
	}
	return out
}

// Seek implements driver.Seeker with SeekPartitions, which returns once
// librdkafka's fetchers moved: librdkafka discards what it fetched from the
// earlier positions, and Seek drops what the adapter buffered of those
// partitions. It waits for a Poll in progress (at most pollSlice plus a
// rebalance callback) so that no record polled from an earlier position is
// handed out after it returns; called from inside a GroupHandler call, it
// seeks at once.
func (c *consumer) Seek(ctx context.Context, offsets map[polykafka.TopicPartition]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	if c.closing.Load() {
		return errClosed
	}
	if !c.inCallback.Load() {
		c.pollMu.Lock()
		defer c.pollMu.Unlock()
		if c.closing.Load() {
			return errClosed
		}
	}
	tps := make([]kafka.TopicPartition, 0, len(offsets))
	for tp, o := range offsets {
		tps = append(tps, nativeTP(tp, kafka.Offset(o)))
	}
	var res []kafka.TopicPartition
	err := c.call(ctx, func() (err error) {
		res, err = c.kc.SeekPartitions(tps)
		return err
	})
	if err != nil {
		return err
	}
	n := 0
	for _, r := range c.buffered {
		if _, sought := offsets[r.TopicPartition()]; !sought {
			c.buffered[n] = r
			n++
		}
	}
	clear(c.buffered[n:])
	c.buffered = c.buffered[:n]
	var errs []error
	stopped := make(map[polykafka.TopicPartition]int64)
	for _, r := range res {
		tp := topicPartition(r)
		var ke kafka.Error
		switch {
		case r.Error == nil:
			if c.active[tp] {
				c.starts[tp] = offsets[tp]
			}
		case errors.As(r.Error, &ke) && ke.Code() == kafka.ErrState && c.active[tp]:
			// librdkafka seeks only partitions it is fetching; one whose
			// fetch stopped (out of range with auto.offset.reset=error) is
			// restarted by assigning it again.
			stopped[tp] = offsets[tp]
		default:
			errs = append(errs, &driver.PartitionError{TopicPartition: tp, Err: r.Error})
		}
	}
	if len(stopped) > 0 {
		if err := c.reassign(stopped); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reassign assigns the member's partitions again (eager librdkafka changes
// an assignment only as a whole): those of offsets at their offset, the
// others at their position (the offset after the last record polled), or
// where they started if none was polled yet. Partitions paused through
// Pause are paused again. Called with pollMu held.
func (c *consumer) reassign(offsets map[polykafka.TopicPartition]int64) error {
	if c.kip848 {
		return c.reassignIncremental(offsets)
	}
	var tps []polykafka.TopicPartition
	for tp := range c.active {
		tps = append(tps, tp)
	}
	pos, err := c.kc.Position(nativeTPs(tps))
	if err != nil {
		return err
	}
	assign := make([]kafka.TopicPartition, 0, len(pos))
	for _, p := range pos {
		tp := topicPartition(p)
		at, ok := offsets[tp]
		if !ok {
			at = int64(p.Offset)
			if at < 0 {
				at = c.starts[tp]
			}
		}
		c.starts[tp] = at
		assign = append(assign, nativeTP(tp, kafka.Offset(at)))
	}
	if err := c.kc.Assign(assign); err != nil {
		return err
	}
	c.pauseMu.Lock()
	var paused []polykafka.TopicPartition
	for tp := range c.paused {
		if c.active[tp] {
			paused = append(paused, tp)
		}
	}
	c.pauseMu.Unlock()
	if len(paused) > 0 {
		return c.kc.Pause(nativeTPs(paused))
	}
	return nil
}

// reassignIncremental (KIP-848) restarts the partitions of offsets at
// their offset, leaving the others alone: an incremental assignment
// cannot be replaced as a whole. Called with pollMu held.
func (c *consumer) reassignIncremental(offsets map[polykafka.TopicPartition]int64) error {
	parts := make([]kafka.TopicPartition, 0, len(offsets))
	for tp, at := range offsets {
		c.starts[tp] = at
		parts = append(parts, nativeTP(tp, kafka.Offset(at)))
	}
	if err := c.kc.IncrementalUnassign(parts); err != nil {
		return err
	}
	if err := c.kc.IncrementalAssign(parts); err != nil {
		return err
	}
	c.pauseMu.Lock()
	var paused []polykafka.TopicPartition
	for tp := range offsets {
		if c.paused[tp] {
			paused = append(paused, tp)
		}
	}
	c.pauseMu.Unlock()
	if len(paused) > 0 {
		return c.kc.Pause(nativeTPs(paused))
	}
	return nil
}

// GroupMetadata implements driver.GroupMember from librdkafka's consumer
// group metadata.
func (c *consumer) GroupMetadata() (driver.GroupMetadata, bool) {
	var md driver.GroupMetadata
	err := c.call(context.Background(), func() error {
		cgmd, err := c.kc.GetConsumerGroupMetadata()
		if err != nil {
			return err
		}
		md, err = decodeGroupMetadata(cgmd)
		return err
	})
	if err != nil || md.Generation < 0 || md.MemberID == "" {
		return driver.GroupMetadata{}, false
	}
	return md, true
}

// Close implements driver.Consumer: it unsubscribes, which makes librdkafka
// revoke the assignment (the handler's Revoked runs inside Poll and
// commits) and leave the group, waits for the calls in flight, then closes
// the client.
func (c *consumer) Close(ctx context.Context) error {
	if !c.closing.CompareAndSwap(false, true) {
		return errClosed
	}
	stop := context.AfterFunc(ctx, c.cancel)
	defer stop()
	close(c.stopIdle)
	<-c.idleDone
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.kip848 {
		c.awaitJoined(ctx)
	}
	var errs []error
	if err := c.kc.Unsubscribe(); err != nil {
		errs = append(errs, err)
	}
	// Poll until nothing is assigned: the revocation the unsubscription
	// causes has run, and so has any rebalance event queued before it (an
	// assignment queued now is applied, then revoked). librdkafka must not
	// raise an assignment event once kafka.Consumer.Close has begun: an
	// assign called from that callback can wait forever (librdkafka#4884,
	// #4527; the workaround there: unsubscribe, wait until nothing is
	// assigned, then close). Once unsubscribed, librdkafka ignores the
	// responses of a join in flight, so no later assignment comes, and
	// Close does not wait for the rest of the group to settle.
	c.settle(ctx)
	c.life.Lock()
	c.closed = true
	c.life.Unlock()
	c.adm.Close()
	c.inClose = true
	if err := c.kc.Close(); err != nil {
		errs = append(errs, err)
	}
	c.cancel()
	<-c.logsDone
	if c.pending != nil {
		errs = append(errs, c.pending)
	}
	return errors.Join(errs...)
}

// joinWait bounds how long Close of a KIP-848 member waits for its join
// to be answered before it leaves.
const joinWait = 2 * time.Second

// awaitJoined (KIP-848) polls until the coordinator has answered the
// member's join (its epoch is above 0), for at most joinWait or until ctx
// is done. A member closed with its joining heartbeat unanswered leaves
// without the coordinator knowing it, and the join then registers it
// after the leave: it stays in the group until its session times out (a
// New that failed on a missing topic left one behind in 4 of 15 runs).
// Called with pollMu held.
func (c *consumer) awaitJoined(ctx context.Context) {
	deadline := time.Now().Add(joinWait)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		cgmd, err := c.kc.GetConsumerGroupMetadata()
		if err != nil {
			return
		}
		if md, err := decodeGroupMetadata(cgmd); err != nil || md.Generation > 0 {
			return
		}
		c.kc.Poll(int(pollSlice.Milliseconds()))
	}
}

// closeGrace bounds how long Close still polls for the revocation after
// its ctx is done. c.cancel has run by then, so the handler's Revoked
// does not wait on a commit, and the revocation takes milliseconds.
const closeGrace = 2 * time.Second

// settle polls until nothing is assigned (unassigned), for as long as ctx
// allows and then for closeGrace more. kafka.Consumer.Close must not be
// the one to run a revocation: an unassign from the rebalance callback
// during librdkafka's close can wait forever (librdkafka#4884), which is
// how a Close whose ctx ran out left a goroutine behind for good. If the
// revocation has still not come, the assignment is dropped here, outside
// the callback, where unassigning is safe. Called with pollMu held.
func (c *consumer) settle(ctx context.Context) {
	for ctx.Err() == nil && !c.unassigned() {
		c.kc.Poll(int(pollSlice.Milliseconds()))
	}
	if ctx.Err() == nil {
		return
	}
	grace := time.Now().Add(closeGrace)
	for time.Now().Before(grace) {
		if c.unassigned() {
			return
		}
		c.kc.Poll(int(pollSlice.Milliseconds()))
	}
	c.log.Warn("polykafka: confluent: Close: the revocation did not come before the deadline; unassigning without it", "owned", c.owned)
	if err := c.kc.Unassign(); err != nil {
		c.pending = errors.Join(c.pending, describe("unassign", err))
	}
	c.owned = nil
	for ev := c.kc.Poll(0); ev != nil; ev = c.kc.Poll(0) {
	}
}

// unassigned reports whether, after Unsubscribe, the member holds no
// partitions and no rebalance event is queued. Called with pollMu held.
func (c *consumer) unassigned() bool {
	if len(c.owned) > 0 {
		return false
	}
	if as, err := c.kc.Assignment(); err != nil || len(as) > 0 {
		return false
	}
	// A rebalance event queued before the unsubscription is applied now
	// (the callback runs inside Poll).
	c.rebalanced = false
	for ev := c.kc.Poll(0); ev != nil; ev = c.kc.Poll(0) {
	}
	return !c.rebalanced && len(c.owned) == 0
}

// As implements driver.Consumer.
func (c *consumer) As(target any) bool {
	switch t := target.(type) {
	case **kafka.Consumer:
		if t != nil {
			*t = c.kc
			return true
		}
	case **kafka.AdminClient:
		if t != nil {
			*t = c.adm
			return true
		}
	}
	return false
}
