//go:build cgo

package confluent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// closeQuiet is how long Close polls after unsubscribing, and after the
// last rebalance event since, before it closes the client.
const closeQuiet = 200 * time.Millisecond

type consumer struct {
	kc       *kafka.Consumer
	adm      *kafka.AdminClient
	h        driver.GroupHandler
	group    string
	topics   []string
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

	lastFetch atomic.Int64  // UnixNano of the end of the last Fetch poll
	stopIdle  chan struct{} // closed by Close: the idle poller stops
	idleDone  chan struct{} // closed when the idle poller has stopped

	rejoin     atomic.Bool // Rejoin asked for a resubscription
	pauseMu    sync.Mutex
	paused     map[polykafka.TopicPartition]bool // through Pause, for reassign
	inCallback atomic.Bool                       // the rebalance callback is running (with pollMu held)
	closing    atomic.Bool

	// life is read-locked around every call into the client made outside
	// pollMu, and write-locked by Close before the client is destroyed.
	life   sync.RWMutex
	closed bool // guarded by life
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
		"auto.offset.reset":             "error",
		"partition.assignment.strategy": "range",
		"isolation.level":               iso,
		"enable.partition.eof":          false,
		// Rebalances go through the adapter's callback, inside Poll.
		"go.application.rebalance.enable": false,
		"go.events.channel.enable":        false,
	} {
		m[k] = v
	}
	return m, nil
}

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
		kc:       kc,
		h:        cfg.Handler,
		group:    cfg.Group,
		topics:   append([]string(nil), cfg.Topics...),
		log:      cfg.Logger,
		active:   make(map[polykafka.TopicPartition]bool),
		starts:   make(map[polykafka.TopicPartition]int64),
		paused:   make(map[polykafka.TopicPartition]bool),
		stopIdle: make(chan struct{}),
		idleDone: make(chan struct{}),
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
	c.inCallback.Store(true)
	defer c.inCallback.Store(false)
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		tps := make([]polykafka.TopicPartition, len(e.Partitions))
		for i, p := range e.Partitions {
			tps[i] = topicPartition(p)
		}
		c.owned = tps
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
		if err := kc.Assign(assign); err != nil {
			for _, tp := range tps {
				delete(c.active, tp)
			}
			c.pending = errors.Join(c.pending, describe("assign", err))
		}
	case kafka.RevokedPartitions:
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
			out = append(out, record(e, tp))
		}
	case kafka.Error:
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

func record(m *kafka.Message, tp polykafka.TopicPartition) polykafka.Record {
	r := polykafka.Record{
		Topic:     tp.Topic,
		Partition: tp.Partition,
		Offset:    int64(m.TopicPartition.Offset),
		Key:       m.Key,
		Value:     m.Value,
		Timestamp: m.Timestamp,
		Native:    m,
	}
	if len(m.Headers) > 0 {
		r.Headers = make([]polykafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = polykafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// resubscribe makes the group rebalance: librdkafka has no forced rejoin
// and an eager member that rejoins with unchanged metadata gets the current
// generation back, so the member leaves (Unsubscribe: revoke, LeaveGroup)
// and joins again as a new member. Called with pollMu held.
func (c *consumer) resubscribe() {
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

// call runs f, a call into the client, unless the consumer is closed. If
// ctx can end, f runs on its own goroutine and call returns ctx's error
// when ctx ends first; f then finishes on its own (every f is bounded by a
// librdkafka timeout) and Close waits for it before destroying the client.
func (c *consumer) call(ctx context.Context, f func() error) error {
	c.life.RLock()
	if c.closed {
		c.life.RUnlock()
		return errClosed
	}
	if ctx.Done() == nil {
		defer c.life.RUnlock()
		return f()
	}
	if err := ctx.Err(); err != nil {
		c.life.RUnlock()
		return err
	}
	done := make(chan error, 1)
	go func() {
		defer c.life.RUnlock()
		done <- f()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Commit implements driver.Consumer with CommitOffsets, which is
// synchronous and carries each offset's metadata.
func (c *consumer) Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	tps := make([]kafka.TopicPartition, 0, len(offsets))
	for tp, o := range offsets {
		ktp := nativeTP(tp, kafka.Offset(o.Offset))
		md := o.Metadata
		ktp.Metadata = &md
		tps = append(tps, ktp)
	}
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
	var out map[polykafka.TopicPartition]polykafka.CommittedOffset
	err := c.call(ctx, func() (err error) {
		out, err = committed(ctx, c.adm, c.group, topics)
		return err
	})
	if err != nil {
		return nil, err // out may still be written by a call that outlived ctx
	}
	return out, nil
}

// committed lists group's committed offsets, with their metadata, of the
// partitions of topics that have one, with one ListConsumerGroupOffsets.
func committed(ctx context.Context, adm *kafka.AdminClient, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
	defer cancel()
	res, err := adm.ListConsumerGroupOffsets(tctx, []kafka.ConsumerGroupTopicPartitions{{Group: group}})
	if err != nil {
		return nil, err
	}
	for _, g := range res.ConsumerGroupsTopicPartitions {
		for _, p := range g.Partitions {
			tp := topicPartition(p)
			if !want[tp.Topic] {
				continue
			}
			if p.Error != nil {
				return nil, &driver.PartitionError{TopicPartition: tp, Err: p.Error}
			}
			if p.Offset < 0 {
				continue
			}
			var md string
			if p.Metadata != nil {
				md = *p.Metadata
			}
			out[tp] = polykafka.CommittedOffset{Offset: int64(p.Offset), Metadata: md}
		}
	}
	return out, nil
}

// ListOffsets implements driver.Consumer with the admin API's ListOffsets:
// one call for every partition.
func (c *consumer) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	var out map[polykafka.TopicPartition]int64
	err := c.call(ctx, func() (err error) {
		out, err = listOffsets(ctx, c.adm, c.kc, tps, at)
		return err
	})
	if err != nil {
		return nil, err // out may still be written by a call that outlived ctx
	}
	return out, nil
}

// listOffsets resolves at for each of tps with one admin ListOffsets
// call, after a metadata request through md (see below).
func listOffsets(ctx context.Context, adm *kafka.AdminClient, md metadataClient, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	var spec kafka.OffsetSpec
	switch {
	case at == polykafka.OffsetEarliest:
		spec = kafka.EarliestOffsetSpec
	case at == polykafka.OffsetLatest:
		spec = kafka.LatestOffsetSpec
	case at >= 0:
		spec = kafka.NewOffsetSpecForTimestamp(at)
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, "confluent: ListOffsets", fmt.Sprintf("at %d is neither a special offset nor a timestamp", at), nil)
	}
	out := make(map[polykafka.TopicPartition]int64, len(tps))
	if len(tps) == 0 {
		return out, nil
	}
	req := make(map[kafka.TopicPartition]kafka.OffsetSpec, len(tps))
	for _, tp := range tps {
		req[nativeTP(tp, 0)] = spec
	}
	var topics []string
	seen := make(map[string]bool)
	for _, tp := range tps {
		if !seen[tp.Topic] {
			seen[tp.Topic] = true
			topics = append(topics, tp.Topic)
		}
	}
	// librdkafka finds the partitions' leaders in its metadata cache and
	// fails ("No leaders found") for partitions the cache does not show
	// yet, such as partitions just added: a metadata request for the
	// topics updates the cache first.
	if _, err := partitionCounts(ctx, md, topics); err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
	defer cancel()
	res, err := adm.ListOffsets(tctx, req)
	if err != nil {
		return nil, err
	}
	for ktp, info := range res.ResultInfos {
		tp := topicPartition(ktp)
		if info.Error.Code() != kafka.ErrNoError {
			return nil, &driver.PartitionError{TopicPartition: tp, Err: info.Error}
		}
		out[tp] = int64(info.Offset)
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			return nil, &driver.PartitionError{TopicPartition: tp, Err: kafka.NewError(kafka.ErrUnknownTopicOrPart, "no offset listed", false)}
		}
	}
	return out, nil
}

// metadataTimeout bounds a metadata request made with a context that has
// no deadline: the request cannot be cancelled, and Close waits for it.
const metadataTimeout = 5 * time.Second

// metadataClient is what partitionCounts needs of a consumer or producer.
type metadataClient interface {
	GetMetadata(topic *string, allTopics bool, timeoutMs int) (*kafka.Metadata, error)
}

// partitionCounts sends one metadata request per topic (librdkafka asks
// the broker for a named topic; it never answers from its cache).
func partitionCounts(ctx context.Context, cl metadataClient, topics []string) (map[string]int32, error) {
	out := make(map[string]int32, len(topics))
	for _, t := range topics {
		// librdkafka waits out its whole timeout for a usable broker when
		// none answers: end a tenth before ctx, so that the caller gets
		// librdkafka's error (why no broker answered, code Unavailable)
		// rather than a bare deadline, while its context is still live.
		tmo := timeoutMs(ctx, metadataTimeout)
		_, bounded := ctx.Deadline()
		if bounded {
			tmo = max(tmo-tmo/10, 1)
		}
		start := time.Now()
		md, err := cl.GetMetadata(&t, false, tmo)
		if err != nil {
			err = describe(fmt.Sprintf("metadata of topic %q", t), err)
			if bounded && time.Since(start) >= time.Duration(tmo)*time.Millisecond {
				// librdkafka gave up when the time ctx allowed ran out.
				return nil, &polykafka.Error{Code: polykafka.Unavailable, Op: "confluent: PartitionCounts",
					Msg: "no broker answered before the deadline", Err: errors.Join(err, context.DeadlineExceeded)}
			}
			return nil, err
		}
		tm, ok := md.Topics[t]
		if !ok {
			return nil, describe(fmt.Sprintf("topic %q", t), kafka.NewError(kafka.ErrUnknownTopicOrPart, "not in metadata", false))
		}
		if tm.Error.Code() != kafka.ErrNoError {
			return nil, describe(fmt.Sprintf("topic %q", t), tm.Error)
		}
		out[t] = int32(len(tm.Partitions))
	}
	return out, nil
}

// PartitionCounts implements driver.Consumer.
func (c *consumer) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	var out map[string]int32
	err := c.call(ctx, func() (err error) {
		out, err = partitionCounts(ctx, c.kc, topics)
		return err
	})
	if err != nil {
		return nil, err // out may still be written by a call that outlived ctx
	}
	return out, nil
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
	var errs []error
	if err := c.kc.Unsubscribe(); err != nil {
		errs = append(errs, err)
	}
	// Poll until the unsubscription has settled: the revocation it causes
	// has run, and so has any rebalance event queued or in flight before
	// it (a join that completes now is assigned, then revoked). librdkafka
	// must not raise a rebalance event once kafka.Consumer.Close has begun:
	// an assign called from that callback can wait forever
	// (librdkafka#4884, #4527; the workaround there: unsubscribe, wait
	// until nothing is assigned, then close).
	for settled := time.Now(); ctx.Err() == nil && (len(c.owned) > 0 || time.Since(settled) < closeQuiet); {
		c.rebalanced = false
		c.kc.Poll(int(pollSlice.Milliseconds()))
		if c.rebalanced {
			settled = time.Now()
		}
	}
	c.life.Lock()
	c.closed = true
	c.life.Unlock()
	c.adm.Close()
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

// ErrorCode implements driver.Consumer.
func (*consumer) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }
