package polysarama

// The consumer runs sarama's ConsumerGroup.Consume in a loop on its own
// goroutine, for group membership only. Records come from a second
// sarama.Consumer on the same client: each session's ConsumeClaim runs one
// partition consumer of its own, started exactly at the offset the portable
// layer decided in Setup and restarted at will (Seek, Pause/Resume), which
// sarama's claims cannot do. It copies the messages into a per-partition
// queue that Fetch drains.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/backoff"
)

// queueLimit is how many messages of one partition wait for Fetch before
// the partition's pump stops reading from sarama (which then stops
// fetching once its own channel buffer is full).
const queueLimit = 1024

// claimBatch is how many messages a pump moves into its queue at once.
const claimBatch = 256

type consumer struct {
	cluster
	cfg         driver.ConsumerConfig
	log         *slog.Logger
	cg          sarama.ConsumerGroup
	pcons       sarama.Consumer // the partition consumers that fetch records
	fetchClient sarama.Client   // pcons's client (the group's is cluster.client)
	strat       *strategy
	instanceID  string
	hookWait    time.Duration // bound on a Revoked or Lost call
	backoff     time.Duration // wait before re-entering Consume after an error
	retries     int           // sarama's Metadata.Retry.Max, for starting a partition
	unlog       func()
	// conns are the group client's connections, which Close cuts when it
	// finds the member joining (leave.go); inConsume: run is inside
	// Consume.
	conns     *groupConns
	inConsume atomic.Bool

	life       context.Context // ends when Close gives up
	lifeCancel context.CancelFunc
	runCtx     context.Context // ends when Close starts
	runCancel  context.CancelFunc
	loopDone   chan struct{}
	errsDone   chan struct{}

	avail chan struct{} // capacity 1: records or errors are waiting

	mu         sync.Mutex
	closed     bool
	sess       sarama.ConsumerGroupSession // nil between sessions
	sessCancel context.CancelFunc          // ends the current Consume call
	parts      map[polykafka.TopicPartition]*partState
	ready      []*partState // partitions with queued messages, oldest first
	errs       []error
	paused     map[polykafka.TopicPartition]bool
	// closingPC holds, per partition, a channel closed once the partition
	// consumer a session's end closed without waiting (see pump) is gone:
	// sarama consumes a partition once at a time.
	closingPC map[polykafka.TopicPartition]chan struct{}
}

// partState is one assigned partition of the current session. Its fields
// are guarded by consumer.mu.
type partState struct {
	tp      polykafka.TopicPartition
	failed  bool  // Assigned failed: never fetched
	owned   bool  // false once the session ends
	paused  bool  // Pause: not fetched, nothing queued
	next    int64 // where fetching (re)starts: the offset after the last record Fetch returned, or a Seek
	epoch   int   // bumped by every restart; messages of an older epoch are dropped
	inReady bool
	msgs    []*sarama.ConsumerMessage
	space   chan struct{} // capacity 1: Fetch took messages
	ctl     chan struct{} // capacity 1: restart (Seek, Pause, Resume)
}

var (
	_ driver.Consumer    = (*consumer)(nil)
	_ driver.Pauser      = (*consumer)(nil)
	_ driver.Seeker      = (*consumer)(nil)
	_ driver.GroupMember = (*consumer)(nil)
)

// OpenConsumer implements driver.Backend.
func (b *Backend) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	const op = "sarama: OpenConsumer"
	if cfg.GroupProtocol != driver.GroupProtocolClassic {
		return nil, polykafka.NewError(polykafka.Unimplemented, op, "Options.GroupProtocol: "+cfg.GroupProtocol.String()+": sarama has no KIP-848 consumer (only the classic protocol)", nil)
	}
	sc, err := b.config()
	if err != nil {
		return nil, err
	}
	c := &consumer{
		cluster:  cluster{iso: isolation(cfg.ReadCommitted)},
		cfg:      cfg,
		log:      cfg.Logger,
		strat:    newStrategy(cfg.Logger),
		hookWait: sc.Consumer.Group.Rebalance.Timeout,
		backoff:  sc.Consumer.Group.Rebalance.Retry.Backoff,
		retries:  sc.Metadata.Retry.Max,
		loopDone: make(chan struct{}),
		errsDone: make(chan struct{}),
		avail:    make(chan struct{}, 1),
		parts:    make(map[polykafka.TopicPartition]*partState),
		paused:   make(map[polykafka.TopicPartition]bool),

		closingPC: make(map[polykafka.TopicPartition]chan struct{}),
	}
	c.gone = c.isClosed
	def := sarama.NewConfig()
	// Consumers read the metadata of their topics only, and creating the
	// client then needs no reachable broker (the portable layer's first
	// request, PartitionCounts, is bounded by its context).
	if sc.Metadata.Full == def.Metadata.Full {
		sc.Metadata.Full = false
	}
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Return.Errors = true
	// The session's own claims are never read (see ConsumeClaim): they
	// start where fetching them costs least, and never fail a session.
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	sc.Consumer.Group.ResetInvalidOffsets = true
	sc.Consumer.Group.Rebalance.Strategy = nil //nolint:staticcheck // cleared so that GroupStrategies is used
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{c.strat}
	sc.Consumer.IsolationLevel = sarama.ReadUncommitted
	if cfg.ReadCommitted {
		sc.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	c.instanceID = sc.Consumer.Group.InstanceId

	c.unlog = registerLogger(cfg.Logger)
	fc := *sc // the fetch client dials as configured
	c.conns = dialThrough(sc)
	cl, err := b.newClient(ctx, op, sc)
	if err != nil {
		c.unlog()
		return nil, err
	}
	// The partition consumers fetch through a client of their own: sarama
	// sends one request at a time on a broker's connection and holds it
	// until the response (Broker.sendAndReceive), so on a shared client a
	// fetch waiting up to Consumer.MaxWaitTime for records holds up the
	// coordinator's requests on the same broker: the commits of Revoked,
	// LeaveGroup at Close, heartbeats.
	fcl, err := b.newClient(ctx, op, &fc)
	if err != nil {
		_ = cl.Close()
		c.unlog()
		return nil, err
	}
	closeClients := func() {
		_ = fcl.Close()
		_ = cl.Close()
		c.unlog()
	}
	cg, err := sarama.NewConsumerGroupFromClient(cfg.Group, cl)
	if err != nil {
		closeClients()
		return nil, polykafka.NewError(errorCode(err), op, "", err)
	}
	pcons, err := sarama.NewConsumerFromClient(fcl)
	if err != nil {
		_ = cg.Close()
		closeClients()
		return nil, polykafka.NewError(errorCode(err), op, "", err)
	}
	c.client, c.fetchClient, c.cg, c.pcons = cl, fcl, cg, pcons
	c.meta = fcl
	if err := warmUp(ctx, &c.calls, cl); err != nil {
		// The warm-up request ends when sarama's Net timeouts expire or
		// the connection closes.
		_ = pcons.Close()
		_ = cg.Close()
		closeClients()
		return nil, deadlineError(op, err)
	}
	c.strat.setClient(cl)
	c.life, c.lifeCancel = context.WithCancel(context.Background())
	c.runCtx, c.runCancel = context.WithCancel(c.life)
	go c.drainErrors()
	go c.run()
	return c, nil
}

// run re-enters Consume after every session end (a rebalance, Rejoin,
// sarama's own partition-count check, an error) until Close.
func (c *consumer) run() {
	defer close(c.loopDone)
	h := handler{c}
	for {
		ctx, cancel := context.WithCancel(c.runCtx)
		c.mu.Lock()
		c.sessCancel = cancel
		c.mu.Unlock()
		c.inConsume.Store(true)
		err := c.cg.Consume(ctx, c.cfg.Topics, h)
		c.inConsume.Store(false)
		cancel()
		if c.runCtx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return
		}
		if err == nil || errors.Is(err, context.Canceled) {
			continue
		}
		// Consume failed before a session started (join, sync, offset
		// managers). Report it; the portable layer decides what it means.
		// Re-enter after sarama's own rebalance backoff so that a
		// persistent error does not spin.
		c.pushErr(err)
		if !backoff.Sleep(c.runCtx, c.backoff) {
			return
		}
	}
}

// drainErrors moves the group's errors (join, heartbeat) to Fetch. Errors
// of single partitions come from the session's unused claims and offset
// managers: the partition consumers that fetch records report their own.
func (c *consumer) drainErrors() {
	defer close(c.errsDone)
	for err := range c.cg.Errors() {
		var ce *sarama.ConsumerError
		if errors.As(err, &ce) && ce.Topic != "" && ce.Partition >= 0 {
			c.log.Debug("sarama: error of an unused group claim", "err", err)
			continue
		}
		c.pushErr(err)
	}
}

func (c *consumer) pushErr(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
	c.signal()
}

func (c *consumer) signal() {
	select {
	case c.avail <- struct{}{}:
	default:
	}
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// handler is the sarama.ConsumerGroupHandler of every session.
type handler struct{ c *consumer }

// Setup asks the portable layer where each claimed partition starts. The
// claims' partition consumers start only after Setup returns, and the
// adapter's own start exactly at the decided offsets (ConsumeClaim). The
// session's offset managers are left alone: auto-commit is off and the
// adapter never calls the session's Commit, so they never write, and the
// decided position was committed, with its metadata, by the portable layer.
func (h handler) Setup(sess sarama.ConsumerGroupSession) error {
	c := h.c
	var tps []polykafka.TopicPartition
	for t, ps := range sess.Claims() {
		for _, p := range ps {
			tps = append(tps, polykafka.TopicPartition{Topic: t, Partition: p})
		}
	}
	c.mu.Lock()
	c.sess = sess
	c.parts = make(map[polykafka.TopicPartition]*partState, len(tps))
	c.ready = c.ready[:0]
	c.mu.Unlock()
	if len(tps) == 0 {
		return nil
	}

	offs, err := c.cfg.Handler.Assigned(sess.Context(), tps)
	parts := make(map[polykafka.TopicPartition]*partState, len(tps))
	var missing []polykafka.TopicPartition
	for _, tp := range tps {
		ps := &partState{tp: tp, owned: true, space: make(chan struct{}, 1), ctl: make(chan struct{}, 1)}
		parts[tp] = ps
		if err != nil {
			ps.failed = true
			continue
		}
		o, ok := offs[tp]
		if !ok {
			ps.failed = true
			missing = append(missing, tp)
			continue
		}
		ps.next = o.Offset
	}
	c.mu.Lock()
	for tp, ps := range parts {
		ps.paused = c.paused[tp]
	}
	c.parts = parts
	c.mu.Unlock()
	if len(missing) > 0 {
		c.pushErr(fmt.Errorf("sarama: Assigned returned no start offset for %v", missing))
	}
	return nil
}

// ConsumeClaim pauses the session's own claim (sarama started it at the
// offset manager's position, not the decided one) and runs the partition's
// pump until the session ends. It never returns before that: a
// ConsumeClaim that returns ends the whole session (consumer_group_session.go
// startClaim).
func (h handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	c := h.c
	tp := polykafka.TopicPartition{Topic: claim.Topic(), Partition: claim.Partition()}
	c.cg.Pause(map[string][]int32{tp.Topic: {tp.Partition}})
	c.mu.Lock()
	ps := c.parts[tp]
	c.mu.Unlock()
	if ps == nil || ps.failed {
		<-sess.Context().Done()
		return nil
	}
	c.pump(sess.Context().Done(), ps)
	return nil
}

// pump runs the partition consumer of ps, restarting it when asked (Seek,
// Pause, Resume), until done. When done, the partition consumer is closed
// without waiting (closeAsync): its Close waits for the fetch in flight
// (up to Consumer.Fetch's MaxWaitTime, 500 ms by default), and the session
// must end, and Close of the whole consumer return, without that wait.
func (c *consumer) pump(done <-chan struct{}, ps *partState) {
	var pc sarama.PartitionConsumer
	var msgs <-chan *sarama.ConsumerMessage
	var errs <-chan *sarama.ConsumerError
	var epoch int
	stop := func() {
		if pc != nil {
			_ = pc.Close() // drains its errors; messages are dropped
			pc, msgs, errs = nil, nil, nil
		}
	}
	defer func() {
		if pc != nil {
			c.closeAsync(ps.tp, pc)
		}
	}()
	restart := func() {
		stop()
		c.mu.Lock()
		paused, next := ps.paused, ps.next
		epoch = ps.epoch
		c.mu.Unlock()
		if paused {
			return
		}
		pc = c.startPartition(done, ps.tp, next)
		if pc != nil {
			msgs, errs = pc.Messages(), pc.Errors()
		}
	}
	restart()
	batch := make([]*sarama.ConsumerMessage, 0, claimBatch)
	for {
		select {
		case <-done:
			return
		case <-ps.ctl:
			restart()
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			c.pushErr(&driver.PartitionError{TopicPartition: ps.tp, Err: e.Err})
		case m, ok := <-msgs:
			if !ok {
				// sarama stopped this partition (out of range: the error
				// is on errs). Not fetched again until Seek or the next
				// session.
				msgs = nil
				continue
			}
			batch = append(batch[:0], m)
		more:
			for len(batch) < claimBatch {
				select {
				case m, ok := <-msgs:
					if !ok {
						break more
					}
					batch = append(batch, m)
				default:
					break more
				}
			}
			c.enqueue(ps, epoch, batch, done)
		}
	}
}

// startPartition starts a partition consumer of tp at offset. Like
// sarama's own claims (consumer_group_session.go newClaimWithRetry), it
// retries transient leadership errors after a metadata refresh, up to
// Metadata.Retry.Max times; any other error is reported, and the partition
// is not fetched until Seek or the next session.
func (c *consumer) startPartition(done <-chan struct{}, tp polykafka.TopicPartition, offset int64) sarama.PartitionConsumer {
	c.mu.Lock()
	closing := c.closingPC[tp]
	c.mu.Unlock()
	if closing != nil {
		// The partition consumer of an earlier session is still closing.
		select {
		case <-closing:
		case <-done:
			return nil
		}
	}
	backoff := metadataBackoff(c.fetchClient.Config())
	for retries := c.retries; ; retries-- {
		pc, err := c.pcons.ConsumePartition(tp.Topic, tp.Partition, offset)
		if err == nil {
			return pc
		}
		transient := errors.Is(err, sarama.ErrNotConnected) || errors.Is(err, sarama.ErrLeaderNotAvailable) ||
			errors.Is(err, sarama.ErrNotLeaderForPartition) || errors.Is(err, sarama.ErrFencedLeaderEpoch) ||
			errors.Is(err, sarama.ErrUnknownLeaderEpoch) || errors.Is(err, sarama.ErrReplicaNotAvailable)
		if !transient || retries <= 0 {
			c.pushErr(&driver.PartitionError{TopicPartition: tp, Err: err})
			return nil
		}
		t := time.NewTimer(backoff(c.retries - retries + 1))
		select {
		case <-done:
			t.Stop()
			return nil
		case <-t.C:
		}
		_ = c.fetchClient.RefreshMetadata(tp.Topic)
	}
}

// closeAsync closes pc without waiting for its fetch in flight; the next
// startPartition of tp waits for it to be gone. Its errors are dropped, as
// stop's are. Close does not wait for it either: closing the fetch client
// ends it once the fetch in flight returns.
func (c *consumer) closeAsync(tp polykafka.TopicPartition, pc sarama.PartitionConsumer) {
	pc.AsyncClose()
	gone := make(chan struct{})
	c.mu.Lock()
	c.closingPC[tp] = gone
	c.mu.Unlock()
	go func() {
		for range pc.Errors() { // closed once sarama released the partition
		}
		c.mu.Lock()
		if c.closingPC[tp] == gone {
			delete(c.closingPC, tp)
		}
		c.mu.Unlock()
		close(gone)
	}()
}

// enqueue appends batch (fetched in epoch) to ps's queue and waits while
// the queue is full. A batch of an older epoch (ps was restarted since) is
// dropped; the restart itself is signalled on ps.ctl.
func (c *consumer) enqueue(ps *partState, epoch int, batch []*sarama.ConsumerMessage, done <-chan struct{}) {
	c.mu.Lock()
	if !ps.owned || ps.epoch != epoch || ps.paused {
		c.mu.Unlock()
		return
	}
	ps.msgs = append(ps.msgs, batch...)
	if !ps.inReady {
		ps.inReady = true
		c.ready = append(c.ready, ps)
	}
	full := len(ps.msgs) >= queueLimit
	c.mu.Unlock()
	c.signal()
	for full {
		select {
		case <-ps.space:
		case <-done:
			return
		}
		c.mu.Lock()
		full = ps.owned && ps.epoch == epoch && len(ps.msgs) >= queueLimit
		c.mu.Unlock()
	}
}

// Cleanup runs after every ConsumeClaim returned, before sarama releases
// the session and rejoins. It drops what Fetch has not taken and tells the
// portable layer: Lost if the session ended because the coordinator no
// longer knows this member or generation (or heartbeats failed), Revoked
// otherwise.
func (h handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	c := h.c
	c.mu.Lock()
	tps := make([]polykafka.TopicPartition, 0, len(c.parts))
	for tp, ps := range c.parts {
		tps = append(tps, tp)
		ps.owned = false
		ps.msgs = nil
		kick(ps.space)
	}
	c.ready = c.ready[:0]
	c.mu.Unlock()

	if len(tps) > 0 {
		ctx, cancel := context.WithTimeout(c.life, c.hookWait)
		cause := context.Cause(sess.Context())
		if errors.Is(cause, sarama.ErrUnknownMemberId) || errors.Is(cause, sarama.ErrIllegalGeneration) ||
			errors.Is(cause, sarama.ErrFencedInstancedId) || errors.Is(cause, sarama.ErrSessionHeartbeatFailed) {
			c.cfg.Handler.Lost(ctx, tps)
		} else {
			c.cfg.Handler.Revoked(ctx, tps)
		}
		cancel()
	}

	c.mu.Lock()
	c.sess = nil
	c.parts = make(map[polykafka.TopicPartition]*partState)
	c.mu.Unlock()
	return nil
}

// Fetch implements driver.Consumer.
func (c *consumer) Fetch(ctx context.Context, max int, buf []polykafka.Record) ([]polykafka.Record, error) {
	for {
		out, err, ok := c.take(max, buf)
		if ok {
			return out, err
		}
		select {
		case <-c.avail:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take returns what is waiting, and ok false if nothing is.
func (c *consumer) take(max int, buf []polykafka.Record) ([]polykafka.Record, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed, true
	}
	err := errors.Join(c.errs...)
	c.errs = c.errs[:0]
	out := buf[:0]
	if max <= 0 {
		max = 1
	}
	kept := c.ready[:0]
	for i, ps := range c.ready {
		if len(out) >= max || !ps.owned || ps.paused {
			if ps.owned && len(ps.msgs) > 0 {
				kept = append(kept, c.ready[i])
			} else {
				ps.inReady = false
			}
			continue
		}
		if len(ps.msgs) == 0 { // emptied by a restart
			ps.inReady = false
			continue
		}
		n := min(len(ps.msgs), max-len(out))
		for _, m := range ps.msgs[:n] {
			out = appendRecord(out, m)
		}
		ps.next = ps.msgs[n-1].Offset + 1
		clear(ps.msgs[:n])
		if n == len(ps.msgs) {
			ps.msgs = ps.msgs[:0] // keep the array for the next batches
			ps.inReady = false
		} else {
			ps.msgs = ps.msgs[n:]
			kept = append(kept, ps)
		}
		select {
		case ps.space <- struct{}{}:
		default:
		}
	}
	clear(c.ready[len(kept):])
	c.ready = kept
	if len(out) > 0 && len(c.ready) > 0 {
		// More is waiting: let the next Fetch run without waiting.
		select {
		case c.avail <- struct{}{}:
		default:
		}
	}
	return out, err, len(out) > 0 || err != nil
}

// appendRecord appends m converted to rs. rs is usually a reused buffer:
// the record is written in place one field at a time, every field
// (appending a Record value costs a bulk write barrier per record while
// the GC runs; the root package's Record field test fails when Record
// gains a field this must set).
func appendRecord(rs []polykafka.Record, m *sarama.ConsumerMessage) []polykafka.Record {
	rs = slices.Grow(rs, 1)
	rs = rs[:len(rs)+1]
	r := &rs[len(rs)-1]
	r.Topic = m.Topic
	r.Partition = m.Partition
	r.Offset = m.Offset
	r.Key = m.Key
	r.Value = m.Value
	r.Headers = nil
	if len(m.Headers) > 0 {
		r.Headers = make([]polykafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = polykafka.Header{Key: string(h.Key), Value: h.Value}
		}
	}
	r.Timestamp = m.Timestamp
	r.Native = m
	return rs
}

// session returns the current session's generation and member id, or the
// values of no generation.
func (c *consumer) session() (gen int32, member string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return sarama.GroupGenerationUndefined, "", false
	}
	return c.sess.GenerationID(), c.sess.MemberID(), true
}

// Commit implements driver.Consumer with an OffsetCommit request to the
// group's coordinator, in the current session's generation.
func (c *consumer) Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	if c.isClosed() {
		return errClosed
	}
	gen, member, _ := c.session()
	return c.commit(ctx, c.cfg.Group, gen, member, c.instanceID, offsets)
}

// Committed implements driver.Consumer with an OffsetFetch request for all
// of the group's committed partitions.
func (c *consumer) Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	return c.committed(ctx, c.cfg.Group, topics, c.cfg.ReadCommitted)
}

// Rejoin implements driver.Consumer: the counts go into the next
// JoinGroup's user data, and the current session (or join) ends so that
// the consume loop joins again at once.
func (c *consumer) Rejoin(_ context.Context, counts map[string]int32) error {
	c.strat.setCounts(counts)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	if c.sessCancel != nil {
		c.sessCancel()
	}
	return nil
}

// Pause implements driver.Pauser: the partition's consumer stops, and
// what it fetched but Fetch did not return is dropped; Resume starts it
// again after the last record Fetch returned.
func (c *consumer) Pause(_ context.Context, tps []polykafka.TopicPartition) error {
	c.setPaused(tps, true)
	return nil
}

// Resume implements driver.Pauser.
func (c *consumer) Resume(_ context.Context, tps []polykafka.TopicPartition) error {
	c.setPaused(tps, false)
	return nil
}

func (c *consumer) setPaused(tps []polykafka.TopicPartition, paused bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if paused {
			c.paused[tp] = true
		} else {
			delete(c.paused, tp)
		}
		if ps := c.parts[tp]; ps != nil && ps.paused != paused {
			ps.paused = paused
			c.restartLocked(ps)
		}
	}
}

// restartLocked drops ps's queue and makes its pump start over at ps.next.
func (c *consumer) restartLocked(ps *partState) {
	ps.epoch++
	ps.msgs = nil
	kick(ps.ctl)
	kick(ps.space)
}

// Seek implements driver.Seeker: each partition's consumer starts over at
// its offset; what was fetched before and not yet returned is dropped.
// Partitions not assigned are ignored.
func (c *consumer) Seek(_ context.Context, offsets map[polykafka.TopicPartition]int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, off := range offsets {
		if ps := c.parts[tp]; ps != nil && ps.owned && !ps.failed {
			ps.next = off
			c.restartLocked(ps)
		}
	}
	return nil
}

// GroupMetadata implements driver.GroupMember.
func (c *consumer) GroupMetadata() (driver.GroupMetadata, bool) {
	gen, member, ok := c.session()
	if !ok {
		return driver.GroupMetadata{}, false
	}
	return driver.GroupMetadata{Group: c.cfg.Group, Generation: gen, MemberID: member, InstanceID: c.instanceID}, true
}

func (c *consumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close implements driver.Consumer: ending the session runs Cleanup, which
// calls Revoked (the portable layer commits there), then the group is left
// and the client closed.
func (c *consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.signal() // a Fetch waiting returns errClosed
	stop := context.AfterFunc(ctx, c.lifeCancel)
	defer stop()
	c.runCancel()
	c.mu.Lock()
	joining := c.sess == nil && c.inConsume.Load()
	c.mu.Unlock()
	if joining {
		// Consume is joining or syncing: sarama would wait for the group
		// to finish rebalancing (leave.go).
		c.conns.cut()
		// Let sarama's brokers see the cut before ConsumerGroup.Close
		// leaves: a broker whose connection was cut between requests
		// would otherwise send the LeaveGroup on it and fail. Close waits
		// for a request in flight, which the cut has just failed.
		for _, b := range c.client.Brokers() {
			_ = b.Close()
		}
	}

	var err error
	select {
	case <-c.loopDone:
	case <-ctx.Done():
		err = ctx.Err()
	}
	left := make(chan error, 1)
	go func() { left <- c.cg.Close() }() // leaves the group; waits for Consume to return
	select {
	case e := <-left:
		if err == nil && e != nil && !errors.Is(e, sarama.ErrClosedConsumerGroup) {
			err = e
		}
		select {
		case <-c.errsDone: // cg.Close closed Errors
		case <-ctx.Done():
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := c.pcons.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := c.fetchClient.Close(); cerr != nil && err == nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = cerr
	}
	if cerr := c.client.Close(); cerr != nil && err == nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = cerr
	}
	c.calls.wait(ctx)
	select {
	case <-c.loopDone:
	case <-ctx.Done():
	}
	c.lifeCancel()
	c.unlog()
	return err
}

// As implements driver.Consumer.
func (c *consumer) As(target any) bool {
	switch p := target.(type) {
	case *sarama.Client:
		if p != nil {
			*p = c.client
			return true
		}
	case *sarama.ConsumerGroup:
		if p != nil {
			*p = c.cg
			return true
		}
	case *sarama.ConsumerGroupSession:
		if p != nil {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.sess != nil {
				*p = c.sess
				return true
			}
		}
	}
	return false
}
