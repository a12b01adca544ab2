package drivertest

// A fetch position out of range: the portable policy applied by Seek, or
// by a rejoin where the driver has no Seeker.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// noSeek hides the driver's optional interfaces except Pauser, so that
// the portable layer takes its path for backends without Seeker.
type noSeek struct{ driver.Backend }

func (b noSeek) OpenConsumer(ctx context.Context, cfg driver.ConsumerConfig) (driver.Consumer, error) {
	d, err := b.Backend.OpenConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if p, ok := d.(driver.Pauser); ok {
		return struct {
			driver.Consumer
			driver.Pauser
		}{d, p}, nil
	}
	return struct{ driver.Consumer }{d}, nil
}

func testOutOfRangeSeek(t *testing.T, e *env)   { outOfRange(t, e, e.backend) }
func testOutOfRangeRejoin(t *testing.T, e *env) { outOfRange(t, e, noSeek{e.backend}) }

// outOfRange truncates a partition under a consumer whose fetch position
// is before the new log start, and checks that Options.OutOfRange (here
// latest, which no client applies by default) decides where it goes on.
func outOfRange(t *testing.T, e *env, b driver.Backend) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	e.produce(topic, "a", 10, 0)
	s, d := newSink(), newDecisions()
	c, err := consumer.New(e.ctx(wait), b, group, []string{topic},
		e.consumerOpts(&consumer.Options{Initial: discovery.Earliest, OutOfRange: discovery.Latest, Hooks: []any{d}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	e.run(c, s.handler)
	e.eventually(wait, func() bool { return len(s.offsets(tp)) >= 10 }, "the first 10 records were not consumed")

	require.NoError(t, c.Pause(e.ctx(wait), tp), "%s: Pause (the case needs it to hold the fetch position back)", e.rule)
	// One record per produce request: a fetch that was already waiting on
	// the broker when Pause returned (clients do not recall it) takes only
	// the first few, which the consumer may deliver after Resume since they
	// were read before the truncation; every later fetch leaves p0 alone.
	for i := 0; i < 90; i++ { // offsets 10..99
		e.produce(topic, fmt.Sprintf("b%d", i), 1, 0)
	}
	e.cluster.DeleteRecords(t, topic, 0, 50)
	require.NoError(t, c.Resume(e.ctx(wait), tp))

	e.eventuallyf(wait, func() bool {
		_, ok := d.last(topic, 0, discovery.ReasonOutOfRange)
		return ok
	}, func() string {
		return fmt.Sprintf("no out-of-range decision after the log start moved past the fetch position; read %v", s.offsets(tp))
	})
	dec, _ := d.last(topic, 0, discovery.ReasonOutOfRange)
	assert.Equal(t, discovery.Latest, dec.Policy, "%s: the OutOfRange policy applies", e.rule)
	assert.Equal(t, int64(100), dec.Offset, "%s: latest is the end of the log", e.rule)

	want := e.produce(topic, "c", 5, 0) // offsets 100..104
	e.received(s, want, "records after the out-of-range decision")
	var early, after []int64
	for _, o := range s.offsets(tp) {
		switch {
		case o >= 50:
			after = append(after, o)
		case o >= 10:
			early = append(early, o)
		}
	}
	assert.Equal(t, []int64{100, 101, 102, 103, 104}, after,
		"%s: after the truncation the consumer goes on where OutOfRange says (latest), not at the log start (50)", e.rule)
	for i, o := range early {
		// Read before the truncation by a fetch already in flight.
		assert.Equal(t, int64(10+i), o, "%s: records read before the truncation come in order, once", e.rule)
	}
}

// lateSaveStore holds the first Save of tp at a position below the log
// start the case moves to (a commit of records read before the
// truncation) until a Save at or past that start has returned, or until
// hold passes; lateDone is closed when the held Save has returned.
type lateSaveStore struct {
	offsetstore.Store
	tp       polykafka.TopicPartition
	start    int64
	hold     time.Duration
	first    atomic.Bool
	held     chan struct{}
	past     chan struct{}
	pastOnce sync.Once
	lateDone chan struct{}
}

func (s *lateSaveStore) Save(ctx context.Context, group string, pos map[polykafka.TopicPartition]offsetstore.Position) error {
	p, ok := pos[s.tp]
	if ok && p.Offset > 0 && p.Offset < s.start && s.first.CompareAndSwap(false, true) {
		close(s.held)
		select {
		case <-s.past:
		case <-time.After(s.hold):
		case <-ctx.Done():
		}
		err := s.Store.Save(ctx, group, pos)
		close(s.lateDone)
		return err
	}
	err := s.Store.Save(ctx, group, pos)
	if ok && p.Offset >= s.start && err == nil {
		s.pastOnce.Do(func() { close(s.past) })
	}
	return err
}

// testOutOfRangeCommitInFlight: a commit of records read before a
// truncation is still in flight when the fetch position falls out of
// range. The out-of-range decision is what the store keeps: the older
// commit must not land after it and put the position back before the log
// start (the next assignment would decide again, at a later end of the
// log, and lose what was written in between).
func testOutOfRangeCommitInFlight(t *testing.T, e *env) {
	topic, group := e.cluster.Topic(t, 1), e.cluster.Group(t)
	tp := polykafka.TopicPartition{Topic: topic, Partition: 0}
	base := e.store
	if base == nil {
		base = offsetstore.NewMemory()
	}
	store := &lateSaveStore{Store: base, tp: tp, start: 50, hold: 3 * time.Second,
		held: make(chan struct{}), past: make(chan struct{}), lateDone: make(chan struct{})}
	e.produce(topic, "a", 10, 0)
	s, d := newSink(), newDecisions()
	c, err := consumer.New(e.ctx(wait), e.backend, group, []string{topic},
		e.consumerOpts(&consumer.Options{Initial: discovery.Earliest, OutOfRange: discovery.Latest, Store: store, Hooks: []any{d}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	e.run(c, s.handler)
	e.eventually(wait, func() bool { return len(s.offsets(tp)) >= 10 }, "the first 10 records were not consumed")
	select {
	case <-store.held:
	case <-time.After(wait):
		t.Fatalf("%s: no commit of the first records was made", e.rule)
	}
	require.NoError(t, c.Pause(e.ctx(wait), tp), "%s: Pause (the case needs it to hold the fetch position back)", e.rule)
	for i := 0; i < 90; i++ { // offsets 10..99
		e.produce(topic, fmt.Sprintf("b%d", i), 1, 0)
	}
	e.cluster.DeleteRecords(t, topic, 0, 50)
	require.NoError(t, c.Resume(e.ctx(wait), tp))
	e.eventually(wait, func() bool {
		_, ok := d.last(topic, 0, discovery.ReasonOutOfRange)
		return ok
	}, "no out-of-range decision after the log start moved past the fetch position")
	dec, _ := d.last(topic, 0, discovery.ReasonOutOfRange)
	select {
	case <-store.lateDone:
	case <-time.After(wait):
		t.Fatalf("%s: the held commit never returned", e.rule)
	}
	got, err := base.Load(e.ctx(wait), group, topic)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, got[0].Offset, dec.Offset,
		"%s: the stored position is the out-of-range decision (%d), not the commit that was in flight before it", e.rule, dec.Offset)
}
