package polysarama

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// cluster is the adapter's cluster queries (committed offsets, offset
// listing, partition counts, commits) and its error classification,
// written once: the consumer, reader, producer and admin embed it on their
// sarama client.
type cluster struct {
	client sarama.Client
	// meta, if not nil, is the client PartitionCounts asks instead of
	// client: the consumer's fetch client. sarama sends one request at a
	// time on a broker's connection (Broker.sendAndReceive holds its lock
	// until the response), and the group's JoinGroup waits on the
	// coordinator until every member has rejoined, so a metadata request
	// queued behind it on the group's client waited as long: consumer.New
	// (its first PartitionCounts) did not return while another member's
	// revoke waited for its handlers, and the discovery watcher stalled
	// during every join.
	meta  sarama.Client
	calls inflight
	// iso is the isolation level of ListOffsets: the consumer's or the
	// reader's, read_uncommitted for the producer and the admin.
	iso sarama.IsolationLevel
	// gone reports whether the owner was closed; set by the owner.
	gone func() bool
}

var (
	_ driver.OffsetLister     = (*cluster)(nil)
	_ driver.PartitionCounter = (*cluster)(nil)
	_ driver.ErrorCoder       = (*cluster)(nil)
)

func isolation(readCommitted bool) sarama.IsolationLevel {
	if readCommitted {
		return sarama.ReadCommitted
	}
	return sarama.ReadUncommitted
}

// ErrorCode implements driver.ErrorCoder.
func (*cluster) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }

// commit sends one OffsetCommit request for group to its
// coordinator, in generation gen as member (sarama.GroupGenerationUndefined
// and "" commit outside any generation, as an admin).
func (k *cluster) commit(ctx context.Context, group string, gen int32, member, instanceID string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	f, cl := &k.calls, k.client
	conf := cl.Config()
	req := sarama.NewOffsetCommitRequest(conf, group)
	req.ConsumerGroupGeneration = gen
	req.ConsumerID = member
	if req.Version >= 7 && instanceID != "" {
		id := instanceID
		req.GroupInstanceId = &id
	}
	var ts int64
	if req.Version == 1 {
		ts = sarama.ReceiveTime
	}
	for tp, o := range offsets {
		req.AddBlockWithLeaderEpoch(tp.Topic, tp.Partition, o.Offset, -1, ts, o.Metadata)
	}
	return f.do(ctx, func() error {
		br, err := cl.Coordinator(group)
		if err != nil {
			return err
		}
		resp, err := send(br, br.CommitOffset, req)
		if err != nil {
			_ = br.Close()
			return err
		}
		var errs []error
		for tp := range offsets {
			kerr := sarama.ErrIncompleteResponse
			if ps, ok := resp.Errors[tp.Topic]; ok {
				if e, ok := ps[tp.Partition]; ok {
					if e == sarama.ErrNoError {
						continue
					}
					kerr = e
				}
			}
			errs = append(errs, fmt.Errorf("commit %s: %w", tp, kerr))
			if kerr == sarama.ErrNotCoordinatorForConsumer || kerr == sarama.ErrConsumerCoordinatorNotAvailable {
				// Forget the stale coordinator so the next call finds
				// the new one (what sarama's offset manager does).
				_ = cl.RefreshCoordinator(group)
			}
		}
		return errors.Join(errs...)
	})
}

// committed sends an OffsetFetch request for all of group's committed
// partitions to its coordinator and keeps those of topics. With stable (a
// ReadCommitted consumer), the request requires stable offsets where the
// version allows (stableOffsetFetch): a partition whose transactional
// commit is pending fails with UNSTABLE_OFFSET_COMMIT, and the portable
// layer waits.
func (k *cluster) committed(ctx context.Context, group string, topics []string, stable bool) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	if k.gone() {
		return nil, errClosed
	}
	f, cl := &k.calls, k.client
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	err := f.do(ctx, func() error {
		br, err := cl.Coordinator(group)
		if err != nil {
			return err
		}
		req := stableOffsetFetch(cl.Config().Version, group, stable)
		resp, err := send(br, br.FetchOffset, req)
		if req.RequireStable && isEncodingErr(err) {
			// A broker before 2.5 has no require_stable: fetch as the Java
			// consumer and sarama's offset manager do there, unstably.
			req = stableOffsetFetch(cl.Config().Version, group, false)
			resp, err = send(br, br.FetchOffset, req)
		}
		if err != nil {
			_ = br.Close()
			return err
		}
		blocks, gerr := resp.Blocks, resp.Err
		if g := resp.GetGroup(group); g != nil {
			blocks, gerr = g.Blocks, g.Err
		}
		if gerr != sarama.ErrNoError {
			if gerr == sarama.ErrNotCoordinatorForConsumer || gerr == sarama.ErrConsumerCoordinatorNotAvailable {
				_ = cl.RefreshCoordinator(group)
			}
			return fmt.Errorf("offset fetch: %w", gerr)
		}
		for t, ps := range blocks {
			if !want[t] {
				continue
			}
			for p, b := range ps {
				if b.Err != sarama.ErrNoError {
					return fmt.Errorf("offset fetch %s/%d: %w", t, p, b.Err)
				}
				if b.Offset < 0 {
					continue
				}
				out[polykafka.TopicPartition{Topic: t, Partition: p}] = polykafka.CommittedOffset{Offset: b.Offset, Metadata: b.Metadata}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListOffsets implements driver.OffsetLister: one ListOffsets request per
// partition leader, sent in parallel, at the owner's isolation level.
func (k *cluster) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	if k.gone() {
		return nil, errClosed
	}
	f, cl, iso := &k.calls, k.client, k.iso
	if at < 0 && at != polykafka.OffsetEarliest && at != polykafka.OffsetLatest {
		return nil, polykafka.NewError(polykafka.InvalidArgument, "sarama: ListOffsets", fmt.Sprintf("at %d is neither a special offset nor a timestamp", at), nil)
	}
	out := make(map[polykafka.TopicPartition]int64, len(tps))
	err := f.do(ctx, func() error {
		type group struct {
			br  *sarama.Broker
			req *sarama.OffsetRequest
			tps []polykafka.TopicPartition
		}
		groups := make(map[int32]*group)
		for _, tp := range tps {
			br, err := cl.Leader(tp.Topic, tp.Partition)
			if err != nil {
				return fmt.Errorf("leader of %s: %w", tp, err)
			}
			g := groups[br.ID()]
			if g == nil {
				req := sarama.NewOffsetRequest(cl.Config().Version)
				req.IsolationLevel = iso
				g = &group{br: br, req: req}
				groups[br.ID()] = g
			}
			g.req.AddBlock(tp.Topic, tp.Partition, at, 1)
			g.tps = append(g.tps, tp)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for _, g := range groups {
			wg.Go(func() {
				resp, err := send(g.br, g.br.GetAvailableOffsets, g.req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					_ = g.br.Close()
					errs = append(errs, err)
					return
				}
				stale := false
				for _, tp := range g.tps {
					b := resp.GetBlock(tp.Topic, tp.Partition)
					switch {
					case b == nil:
						errs = append(errs, fmt.Errorf("list offsets %s: %w", tp, sarama.ErrIncompleteResponse))
					case b.Err != sarama.ErrNoError:
						errs = append(errs, fmt.Errorf("list offsets %s: %w", tp, b.Err))
						stale = stale || b.Err == sarama.ErrNotLeaderForPartition || b.Err == sarama.ErrLeaderNotAvailable ||
							b.Err == sarama.ErrUnknownTopicOrPartition || b.Err == sarama.ErrFencedLeaderEpoch || b.Err == sarama.ErrUnknownLeaderEpoch
					case g.req.Version == 0 && len(b.Offsets) > 0:
						out[tp] = b.Offsets[0]
					case g.req.Version == 0:
						out[tp] = -1
					default:
						out[tp] = b.Offset
					}
				}
				if stale {
					// The cached leader is stale: refresh so that the
					// portable layer's retry asks the right broker.
					_ = cl.RefreshMetadata(g.tps[0].Topic)
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PartitionCounts implements driver.PartitionCounter: it sends a metadata request for topics to one broker (never
// answered from sarama's cache, and never creating a topic).
func (k *cluster) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	if k.gone() {
		return nil, errClosed
	}
	f, cl := &k.calls, k.client
	if k.meta != nil {
		cl = k.meta
	}
	out := make(map[string]int32, len(topics))
	err := f.do(ctx, func() error {
		if cl.Closed() {
			return errClosed
		}
		br := cl.LeastLoadedBroker()
		if br == nil {
			return sarama.ErrOutOfBrokers
		}
		req := sarama.NewMetadataRequest(cl.Config().Version, topics)
		req.AllowAutoTopicCreation = false
		resp, err := send(br, br.GetMetadata, req)
		if errors.Is(err, sarama.ErrNotConnected) {
			// Another user of the client closed the broker's connection
			// under the request (sarama closes a broker whose request
			// failed, and forgets why): open it again, so that what the
			// caller sees is what a connection says now (a TLS or SASL
			// failure, or the answer), not ErrNotConnected.
			if br = cl.LeastLoadedBroker(); br == nil {
				return sarama.ErrOutOfBrokers
			}
			resp, err = send(br, br.GetMetadata, req)
		}
		if err != nil {
			// sarama's own callers close a broker whose request failed so
			// that its next use reconnects.
			_ = br.Close()
			return err
		}
		for _, t := range resp.Topics {
			if t.Err != sarama.ErrNoError {
				return fmt.Errorf("topic %q: %w", t.Name, t.Err)
			}
			out[t.Name] = int32(len(t.Partitions))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("topic %q: %w", t, sarama.ErrUnknownTopicOrPartition)
		}
	}
	return out, nil
}

// CommitAsAdmin implements driver.Admin with an OffsetCommit request to the
// group's coordinator in no generation (sarama.GroupGenerationUndefined)
// and with no member id.
func (k *cluster) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	if k.gone() {
		return errClosed
	}
	return k.commit(ctx, group, sarama.GroupGenerationUndefined, "", "", offsets)
}

// stableOffsetFetch returns an OffsetFetch request for all of group's
// commits at the version cfgVersion allows. With stable it requires stable
// offsets where that version has them (7, Kafka 2.5, KIP-447), as sarama's
// own offset manager does: sarama sends nothing newer than Config.Version,
// so below 2.5 (the adapter's 2.3 default) the fetch is unstable. sarama
// clamps the version to what the broker supports (ApiVersions); below 7
// the request then fails to encode, which committed answers with an
// unstable fetch.
func stableOffsetFetch(cfgVersion sarama.KafkaVersion, group string, stable bool) *sarama.OffsetFetchRequest {
	req := sarama.NewOffsetFetchRequest(cfgVersion, group, nil)
	req.RequireStable = stable && req.Version >= 7
	return req
}

// isEncodingErr reports whether err is sarama's failure to encode a
// request at the version the broker supports.
func isEncodingErr(err error) bool {
	var pe sarama.PacketEncodingError
	return errors.As(err, &pe)
}
