package kafkago

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/backoff"
)

// consumer is one group member: a kafka.ConsumerGroup whose generations
// are served one at a time by run, and one fetch loop per assigned and
// decided partition (fetch.go).
type consumer struct {
	cluster
	cfg driver.ConsumerConfig
	log *slog.Logger
	// fetchTr carries the fetches: a transport of the consumer's own,
	// closed by Close.
	fetchTr *kafka.Transport
	cg      *kafka.ConsumerGroup
	bal     *balancer
	conns   groupConns // the group's coordinator connections (lost.go)
	rb      kafka.ReadBatchConfig
	// readBackoff is the fetch loops' wait after an error.
	readBackoff backoff.Schedule
	// hbLost is set when a heartbeat of the current generation was
	// answered with an error that means the member was forgotten (lost.go).
	hbLost atomic.Bool

	ctx     context.Context // ends when Close gives up or finishes
	cancel  context.CancelFunc
	nextCtx context.Context // ends when Close starts
	stopRun context.CancelFunc

	closeOnce sync.Once
	runDone   chan struct{}
	rejoin    chan struct{} // capacity 1: ends the current generation
	chunks    chan chunk    // fetch loops -> Fetch
	wake      chan struct{} // capacity 1: a group error is pending
	fetchWG   sync.WaitGroup
	ghostWG   sync.WaitGroup // forgotten's leaves
	// joinBackoff is the group's JoinGroupBackoff (kafka-go's default 5s).
	joinBackoff time.Duration

	mu       sync.Mutex
	closed   bool
	gen      *kafka.Generation
	member   string // the member id kafka-go last sent (JoinGroup, SyncGroup), until it forgets it
	parts    map[polykafka.TopicPartition]*partState
	paused   map[polykafka.TopicPartition]bool
	groupErr error

	// Used by Fetch only (one goroutine at a time).
	left   chunk
	leftAt int
}

var (
	_ driver.Consumer    = (*consumer)(nil)
	_ driver.Pauser      = (*consumer)(nil)
	_ driver.Seeker      = (*consumer)(nil)
	_ driver.GroupMember = (*consumer)(nil)
)

// OpenConsumer implements driver.Backend. It creates the kafka.ConsumerGroup
// (which joins in the background) and returns at once.
func (b *Backend) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	const op = "kafkago: OpenConsumer"
	if cfg.GroupProtocol != driver.GroupProtocolClassic {
		return nil, polykafka.NewError(polykafka.Unimplemented, op, "Options.GroupProtocol: "+cfg.GroupProtocol.String()+": kafka-go has no KIP-848 consumer (only the classic protocol)", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := b.newConsumer(cfg.Logger, cfg.ReadCommitted)
	if err != nil {
		return nil, err
	}
	info, errs := loggers(cfg.Logger)
	c.cfg = cfg
	c.bal = &balancer{}
	c.runDone = make(chan struct{})
	c.rejoin = make(chan struct{}, 1)
	gc := b.opts.ConsumerGroup
	gc.ID = cfg.Group
	gc.Brokers = b.conn.Brokers
	gc.Topics = cfg.Topics
	gc.GroupBalancers = []kafka.GroupBalancer{c.bal}
	gc.WatchPartitionChanges = false
	gc.StartOffset = kafka.FirstOffset // never used: every start is explicit
	if gc.Dialer == nil {
		gc.Dialer = c.dialer
	}
	c.conns.known = func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.member != ""
	}
	gc.Dialer = watchingDialer(gc.Dialer, &c.conns, func(code int16) {
		if lostCode(code) {
			c.hbLost.Store(true)
		}
	}, func(id string) {
		c.mu.Lock()
		c.member = id
		c.mu.Unlock()
	})
	if gc.Logger == nil {
		gc.Logger = info
	}
	if gc.ErrorLogger == nil {
		gc.ErrorLogger = errs
	}
	c.joinBackoff = gc.JoinGroupBackoff
	if c.joinBackoff <= 0 {
		c.joinBackoff = 5 * time.Second // kafka-go's defaultJoinGroupBackoff
	}
	cg, err := kafka.NewConsumerGroup(gc)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	c.cg = cg
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.nextCtx, c.stopRun = context.WithCancel(c.ctx)
	go c.run()
	return c, nil
}

// newConsumer returns a consumer with what fetching needs (the client, the
// fetch transport and sizes, the chunk channel) and no group: OpenConsumer
// adds the group, OpenReader uses it as it is. Its ctx is not set yet.
func (b *Backend) newConsumer(logger *slog.Logger, readCommitted bool) (*consumer, error) {
	d, tr, err := b.natives()
	if err != nil {
		return nil, err
	}
	c := &consumer{
		cluster:     b.newCluster(d, tr),
		log:         logger,
		fetchTr:     freshTransport(tr),
		rb:          b.opts.ReadBatch,
		readBackoff: readSchedule(b.opts),
		chunks:      make(chan chunk, 16),
		wake:        make(chan struct{}, 1),
		parts:       make(map[polykafka.TopicPartition]*partState),
		paused:      make(map[polykafka.TopicPartition]bool),
	}
	if c.rb.MinBytes <= 0 {
		c.rb.MinBytes = 1
	}
	if c.rb.MaxBytes <= 0 {
		c.rb.MaxBytes = 1 << 20
	}
	if c.rb.MaxWait <= 0 {
		c.rb.MaxWait = 500 * time.Millisecond
	}
	c.rb.IsolationLevel = kafka.ReadUncommitted
	if readCommitted {
		c.rb.IsolationLevel = kafka.ReadCommitted
	}
	c.cluster.closed = c.isClosed
	return c, nil
}

// run serves the group's generations until Close.
func (c *consumer) run() {
	defer close(c.runDone)
	for {
		gen, err := c.cg.Next(c.nextCtx)
		if c.nextCtx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			if !errors.Is(err, kafka.RebalanceInProgress) {
				c.forgotten()
			}
			c.log.Debug("kafkago: joining the group failed", "group", c.cfg.Group, "err", err)
			c.reportGroupErr(err)
			continue
		}
		c.serve(gen)
	}
}

// forgotten follows kafka.ConsumerGroup after a failed generation that was
// not refused with REBALANCE_IN_PROGRESS: it sends LeaveGroup for its
// member id and joins again with none (consumergroup.go run). When that
// leave fails too, as during an outage, the coordinator keeps the old id
// as a member that never rejoins, and the group's next rebalance waits for
// it until the coordinator expels it (the rebalance or session timeout,
// 30 s by default). The adapter finishes that leave once the cluster
// answers, retrying after the group's own JoinGroupBackoff, until the
// coordinator removed the id or no longer knows it, or Close.
func (c *consumer) forgotten() {
	c.mu.Lock()
	if c.closed { // Close leaves with the id (leave)
		c.mu.Unlock()
		return
	}
	ghost := c.member
	c.member = ""
	c.mu.Unlock()
	if ghost == "" {
		return
	}
	c.ghostWG.Add(1)
	go func() {
		defer c.ghostWG.Done()
		for {
			err := c.leaveAs(c.ctx, ghost)
			if err == nil || errors.Is(err, kafka.UnknownMemberId) || c.ctx.Err() != nil {
				return
			}
			if !backoff.Sleep(c.ctx, c.joinBackoff) {
				return
			}
		}
	}()
}

// reportGroupErr hands err to the next Fetch.
func (c *consumer) reportGroupErr(err error) {
	c.mu.Lock()
	c.groupErr = err
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// serve runs one generation in a single gen.Start function and returns when
// it has ended: returning from the function ends the generation
// (consumergroup.go Generation.Start), which is how Rejoin and Close end it.
func (c *consumer) serve(gen *kafka.Generation) {
	done := make(chan struct{})
	gen.Start(func(gctx context.Context) {
		defer close(done)
		c.generation(gctx, gen)
	})
	<-done
}

func (c *consumer) generation(gctx context.Context, gen *kafka.Generation) {
	ctx, cancel := context.WithCancel(c.nextCtx)
	defer cancel()
	defer context.AfterFunc(gctx, cancel)()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.gen = gen
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.gen = nil
		c.mu.Unlock()
	}()
	select { // a Rejoin before this point is covered below or by Assigned
	case <-c.rejoin:
	default:
	}
	if c.bal.stale() {
		// Counts changed while this generation formed: rejoin with them
		// before anything is assigned (kafka-go#646).
		c.log.Debug("kafkago: partition counts changed during the join; rejoining", "group", c.cfg.Group, "generation", gen.ID)
		c.hbLost.Store(false)
		return
	}

	var tps []polykafka.TopicPartition
	for topic, as := range gen.Assignments {
		for _, a := range as {
			tps = append(tps, polykafka.TopicPartition{Topic: topic, Partition: int32(a.ID)})
		}
	}
	slices.SortFunc(tps, compareTP)
	if ctx.Err() != nil {
		// The generation ended before it was served: nothing was handed
		// to the handler.
		c.hbLost.Store(false)
		return
	}
	c.log.Debug("kafkago: generation", "group", c.cfg.Group, "generation", gen.ID, "member", gen.MemberID, "partitions", tps)
	if len(tps) > 0 {
		starts, err := c.cfg.Handler.Assigned(ctx, tps)
		if err != nil {
			c.log.Debug("kafkago: Assigned failed; the partitions stay idle", "group", c.cfg.Group, "err", err)
		} else {
			c.mu.Lock()
			for _, tp := range tps {
				if o, ok := starts[tp]; ok {
					st := &partState{next: o.Offset}
					c.parts[tp] = st
					if !c.paused[tp] {
						c.startFetch(tp, st)
					}
				}
			}
			c.mu.Unlock()
		}
	}

	select {
	case <-ctx.Done():
	case <-c.rejoin:
	}
	c.stopAllFetches()
	// A heartbeat error is read before kafka-go ends the generation for it,
	// so it is known by now; it belongs to this generation.
	switch lost := c.hbLost.Swap(false); {
	case len(tps) == 0:
	case lost:
		c.log.Debug("kafkago: the coordinator forgot this member; partitions lost", "group", c.cfg.Group, "generation", gen.ID)
		c.cfg.Handler.Lost(c.ctx, tps)
	default:
		c.cfg.Handler.Revoked(c.ctx, tps)
	}
}

func compareTP(a, b polykafka.TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// Commit implements driver.Consumer with kafka.Client.OffsetCommit, which
// carries the metadata that Generation.CommitOffsets cannot.
func (c *consumer) Commit(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if c.isClosed() {
		return errClosed
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	genID, member := -1, ""
	if gen != nil {
		genID, member = int(gen.ID), gen.MemberID
	}
	return commitOffsets(ctx, c.b, c.client, c.cfg.Group, genID, member, offsets)
}

// commitOffsets commits offsets with their metadata for group with
// kafka.Client.OffsetCommit, in generation genID as member (-1 and ""
// commit outside any generation, as an admin).
func commitOffsets(ctx context.Context, b *Backend, client *kafka.Client, group string, genID int, member string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: genID, MemberID: member, Topics: make(map[string][]kafka.OffsetCommit)}
	for tp, o := range offsets {
		req.Topics[tp.Topic] = append(req.Topics[tp.Topic], kafka.OffsetCommit{Partition: int(tp.Partition), Offset: o.Offset, Metadata: o.Metadata})
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	res, err := client.OffsetCommit(ctx, req)
	if err != nil {
		return err
	}
	var errs []error
	for topic, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				errs = append(errs, &driver.PartitionError{TopicPartition: polykafka.TopicPartition{Topic: topic, Partition: int32(p.Partition)}, Err: p.Error})
			}
		}
	}
	return errors.Join(errs...)
}

// Committed implements driver.Consumer with kafka.Client.OffsetFetch.
func (c *consumer) Committed(ctx context.Context, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	return c.committed(ctx, c.cfg.Group, topics)
}

// Rejoin implements driver.Consumer: the counts go into the balancer's user
// data for the next join, and the current generation ends.
func (c *consumer) Rejoin(ctx context.Context, counts map[string]int32) error {
	if c.isClosed() {
		return errClosed
	}
	c.bal.setCounts(counts)
	c.mu.Lock()
	active := c.gen != nil
	c.mu.Unlock()
	if active {
		select {
		case c.rejoin <- struct{}{}:
		default:
		}
	}
	return nil
}

// GroupMetadata implements driver.GroupMember.
func (c *consumer) GroupMetadata() (driver.GroupMetadata, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == nil {
		return driver.GroupMetadata{}, false
	}
	return driver.GroupMetadata{Group: c.gen.GroupID, Generation: c.gen.ID, MemberID: c.gen.MemberID}, true
}

// isClosed reports whether Close has finished (or given up): calls made
// from Revoked while Close runs still work.
func (c *consumer) isClosed() bool { return c.ctx.Err() != nil }

// Close implements driver.Consumer. ConsumerGroup.Close ends the current
// generation, whose function stops fetching and calls Revoked (the member
// still belongs to the group, so its commits succeed), and then leaves the
// group: one rebalance for the other members, not two. Close returns by
// ctx's deadline; what kafka-go still does then (a JoinGroup in progress
// takes no context) finishes in the background.
func (c *consumer) Close(ctx context.Context) error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
	})
	if !first {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.cg.Close()
		if c.conns.cutJoin() {
			c.leave(ctx)
		}
		c.stopRun()
		<-c.runDone
		c.cancel()
		c.fetchWG.Wait()
		c.ghostWG.Wait()
		c.fetchTr.CloseIdleConnections()
		if c.b.opts.Transport == nil {
			c.tr.CloseIdleConnections()
		}
	}()
	// A JoinGroup or SyncGroup in flight would hold cg.Close until the
	// group completes its rebalance: cut it, unless it is the member's
	// first join (lost.go groupConns).
	c.conns.abort()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		c.cancel() // ends Revoked's context and the fetch loops
		return ctx.Err()
	}
}

// leave sends LeaveGroup for the member id of the last generation, after
// Close cut a JoinGroup or SyncGroup of it: kafka.ConsumerGroup, whose join
// failed, forgets the id and leaves nothing. A member's first join, which
// has no id to leave with, is never cut (lost.go groupConns).
func (c *consumer) leave(ctx context.Context) {
	c.mu.Lock()
	member := c.member
	c.mu.Unlock()
	if member == "" {
		return
	}
	if err := c.leaveAs(ctx, member); err != nil {
		c.log.Debug("kafkago: leaving the group after cutting its join failed", "group", c.cfg.Group, "member", member, "err", err)
	}
}

// leaveAs sends LeaveGroup for member.
func (c *consumer) leaveAs(ctx context.Context, member string) error {
	ctx, cancel := c.b.opCtx(ctx)
	defer cancel()
	resp, err := c.client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{
		GroupID: c.cfg.Group,
		Members: []kafka.LeaveGroupRequestMember{{ID: member}},
	})
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	for _, m := range resp.Members {
		if m.Error != nil {
			return m.Error
		}
	}
	return nil
}

// As implements driver.Consumer: *kafka.ConsumerGroup, *kafka.Generation
// (the current one, nil between generations) and *kafka.Client.
func (c *consumer) As(target any) bool {
	switch p := target.(type) {
	case **kafka.ConsumerGroup:
		*p = c.cg
	case **kafka.Generation:
		c.mu.Lock()
		*p = c.gen
		c.mu.Unlock()
	case **kafka.Client:
		*p = c.client
	default:
		return false
	}
	return true
}

// readSchedule is the fetch loops' wait after an error: the Options'
// ReadBackoffMin/Max, kafka-go's Reader defaults (100 ms, 1 s) when unset.
func readSchedule(o Options) backoff.Schedule {
	return backoff.Schedule{
		Min: cmp.Or(o.ReadBackoffMin, 100*time.Millisecond),
		Max: cmp.Or(o.ReadBackoffMax, time.Second),
	}
}
