//go:build cgo

package confluent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// cluster is the adapter's cluster queries (committed offsets, offset
// listing, partition counts, commits outside a generation) and its error
// classification, written once: the consumer, reader, producer and admin
// embed it, with the guard of their client's life.
type cluster struct {
	// adm is the admin API on the owner's client (nil for a producer).
	adm *kafka.AdminClient
	// md sends the metadata requests: the owner's client.
	md metadataClient

	// life is read-locked around every call into the client made outside
	// the owner's own locks, and write-locked by Close before the client
	// is destroyed.
	life   sync.RWMutex
	closed bool // guarded by life

	// auth is the client's authentication failures, which end the calls
	// waiting on it.
	auth authFailures
}

// authFailures translates librdkafka's way of reporting a failed
// authentication (SASL, or a TLS handshake the broker refused) into the
// result of the calls waiting on the client: librdkafka reports it as an
// error event (ERR__AUTHENTICATION) and keeps reconnecting, while a
// request waiting for a usable connection (GetMetadata, the admin API)
// waits out its whole timeout and then fails as a transport error. A call
// that is waiting when an authentication failure is reported fails with
// that error (code PermissionDenied) instead; calls started later wait for
// the next report, so a failure that stops (credentials fixed on the
// broker) stops failing calls.
type authFailures struct {
	mu  sync.Mutex
	ch  chan struct{} // closed at the next failure
	err error         // the last failure
	// failing is set by a failure and cleared by news that the client
	// authenticated since (a delivered record): librdkafka reports a
	// repeated failure once.
	failing atomic.Bool
}

// next returns a channel closed at the next failure.
func (a *authFailures) next() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}

// last returns the last failure reported.
func (a *authFailures) last() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// current returns the last failure if no success came after it, else
// nil.
func (a *authFailures) current() error {
	if !a.failing.Load() {
		return nil
	}
	return a.last()
}

// succeeded records news that the client authenticated.
func (a *authFailures) succeeded() {
	if a.failing.Load() {
		a.failing.Store(false)
	}
}

// note records e if it is an authentication failure and wakes the calls
// waiting for one.
func (a *authFailures) note(e kafka.Error) {
	if e.Code() != kafka.ErrAuthentication {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = e
	a.failing.Store(true)
	if a.ch != nil {
		close(a.ch)
		a.ch = nil
	}
}

var (
	_ driver.OffsetLister     = (*cluster)(nil)
	_ driver.PartitionCounter = (*cluster)(nil)
	_ driver.ErrorCoder       = (*cluster)(nil)
)

// ErrorCode implements driver.ErrorCoder.
func (*cluster) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }

// call runs f, a call into the client, unless the owner is closed. If
// ctx can end, f runs on its own goroutine and call returns ctx's error
// when ctx ends first; f then finishes on its own (every f is bounded by a
// librdkafka timeout) and Close waits for it before destroying the client.
func (k *cluster) call(ctx context.Context, f func() error) error {
	k.life.RLock()
	if k.closed {
		k.life.RUnlock()
		return errClosed
	}
	if ctx.Done() == nil {
		defer k.life.RUnlock()
		return f()
	}
	if err := ctx.Err(); err != nil {
		k.life.RUnlock()
		return err
	}
	done := make(chan error, 1)
	authFailed := k.auth.next()
	go func() {
		defer k.life.RUnlock()
		done <- f()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-authFailed:
		return k.auth.last()
	}
}

// committed implements Consumer.Committed and Admin.Committed with the
// admin API's ListConsumerGroupOffsets (all partitions of the group, with
// metadata).
func (k *cluster) committed(ctx context.Context, group string, topics []string, stable bool) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	var out map[polykafka.TopicPartition]polykafka.CommittedOffset
	err := k.call(ctx, func() (err error) {
		out, err = committed(ctx, k.adm, group, topics, stable)
		return err
	})
	if err != nil {
		return nil, err // out may still be written by a call that outlived ctx
	}
	return out, nil
}

// committed lists group's committed offsets, with their metadata, of the
// partitions of topics that have one, with one ListConsumerGroupOffsets.
// With stable (a ReadCommitted consumer), it requires stable offsets
// (SetAdminRequireStableOffsets, KIP-447): a partition whose transactional
// commit is pending fails with UNSTABLE_OFFSET_COMMIT, and the portable
// layer waits.
func committed(ctx context.Context, adm *kafka.AdminClient, group string, topics []string, stable bool) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
	defer cancel()
	res, err := adm.ListConsumerGroupOffsets(tctx, []kafka.ConsumerGroupTopicPartitions{{Group: group}}, kafka.SetAdminRequireStableOffsets(stable))
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

// ListOffsets implements driver.OffsetLister with the admin API's
// ListOffsets (read_uncommitted, the binding's default): one call for
// every partition.
func (k *cluster) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	var out map[polykafka.TopicPartition]int64
	err := k.call(ctx, func() (err error) {
		out, err = listOffsets(ctx, k.adm, k.md, tps, at)
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

// PartitionCounts implements driver.PartitionCounter with GetMetadata, one
// request per topic. The metadata request cannot be cancelled: when ctx
// ends first, PartitionCounts returns and the request finishes on its own
// (within metadataTimeout when ctx has no deadline); Close waits for it.
func (k *cluster) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	var out map[string]int32
	err := k.call(ctx, func() (err error) {
		out, err = partitionCounts(ctx, k.md, topics)
		return err
	})
	if err != nil {
		return nil, err // out may still be written by a call that outlived ctx
	}
	return out, nil
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
					Msg: "no broker answered before the deadline", Err: fmt.Errorf("%w: %w", err, context.DeadlineExceeded)}
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

// CommitAsAdmin implements driver.Admin with AlterConsumerGroupOffsets:
// librdkafka sends one OffsetCommit request with generation -1, no member
// id, and each TopicPartition's Metadata.
func (k *cluster) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	tps := nativeOffsets(offsets)
	return k.call(ctx, func() error {
		tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
		defer cancel()
		res, err := k.adm.AlterConsumerGroupOffsets(tctx, []kafka.ConsumerGroupTopicPartitions{{Group: group, Partitions: tps}})
		if err != nil {
			return describe(fmt.Sprintf("commit offsets of group %q", group), err)
		}
		var errs []error
		for _, g := range res.ConsumerGroupsTopicPartitions {
			for _, p := range g.Partitions {
				if p.Error != nil {
					errs = append(errs, &driver.PartitionError{TopicPartition: topicPartition(p), Err: p.Error})
				}
			}
		}
		return errors.Join(errs...)
	})
}

// nativeOffsets returns offsets as the binding's TopicPartitions, each
// with its offset and metadata.
func nativeOffsets(offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) []kafka.TopicPartition {
	tps := make([]kafka.TopicPartition, 0, len(offsets))
	for tp, o := range offsets {
		ktp := nativeTP(tp, kafka.Offset(o.Offset))
		md := o.Metadata
		ktp.Metadata = &md
		tps = append(tps, ktp)
	}
	return tps
}
