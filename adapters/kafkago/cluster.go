package kafkago

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// cluster is the adapter's cluster queries (committed offsets, offset
// listing, partition counts, commits outside a generation) and its error
// classification, written once: the consumer, reader, producer and admin
// embed it. Group and offset requests go through client, metadata
// requests through dialer's connections.
type cluster struct {
	b      *Backend
	dialer *kafka.Dialer
	tr     *kafka.Transport
	client *kafka.Client
	// closed reports whether the owner was closed; set by the owner.
	closed func() bool
}

func (b *Backend) newCluster(d *kafka.Dialer, tr *kafka.Transport) cluster {
	return cluster{b: b, dialer: d, tr: tr, client: &kafka.Client{Addr: b.addr(), Transport: tr}, closed: func() bool { return false }}
}

var (
	_ driver.OffsetLister     = cluster{}
	_ driver.PartitionCounter = cluster{}
	_ driver.ErrorCoder       = cluster{}
)

// ErrorCode implements driver.ErrorCoder.
func (cluster) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }

// committed returns group's commits in topics with kafka.Client.OffsetFetch
// for every partition of topics (counts read with a metadata request on
// the dialer's connection).
func (k cluster) committed(ctx context.Context, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	if k.closed() {
		return nil, errClosed
	}
	b := k.b
	pctx, cancel := b.opCtx(ctx)
	counts, err := partitionCounts(pctx, k.dialer, b.conn.Brokers, topics)
	cancel()
	if err != nil {
		return nil, err
	}
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: make(map[string][]int, len(topics))}
	for _, t := range topics {
		ps := make([]int, counts[t])
		for i := range ps {
			ps[i] = i
		}
		req.Topics[t] = ps
	}
	ctx, cancel = b.opCtx(ctx)
	defer cancel()
	res, err := k.client.OffsetFetch(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, res.Error
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	var errs []error
	for topic, ps := range res.Topics {
		for _, p := range ps {
			tp := polykafka.TopicPartition{Topic: topic, Partition: int32(p.Partition)}
			switch {
			case p.Error != nil:
				errs = append(errs, &driver.PartitionError{TopicPartition: tp, Err: p.Error})
			case p.CommittedOffset >= 0:
				out[tp] = polykafka.CommittedOffset{Offset: p.CommittedOffset, Metadata: p.Metadata}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ListOffsets implements driver.OffsetLister with one kafka.Client.ListOffsets
// request (kafka-go splits it per leader). It uses a transport with no
// cached metadata, so that partitions created moments ago are routed.
func (k cluster) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	if k.closed() {
		return nil, errClosed
	}
	b := k.b
	if len(tps) == 0 {
		return map[polykafka.TopicPartition]int64{}, nil
	}
	ft := freshTransport(k.tr)
	defer ft.CloseIdleConnections()
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	req := &kafka.ListOffsetsRequest{Topics: make(map[string][]kafka.OffsetRequest)}
	for _, tp := range tps {
		req.Topics[tp.Topic] = append(req.Topics[tp.Topic], kafka.OffsetRequest{Partition: int(tp.Partition), Timestamp: at})
	}
	res, err := (&kafka.Client{Addr: b.addr(), Transport: ft}).ListOffsets(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make(map[polykafka.TopicPartition]int64, len(tps))
	var errs []error
	for topic, ps := range res.Topics {
		for _, p := range ps {
			tp := polykafka.TopicPartition{Topic: topic, Partition: int32(p.Partition)}
			if p.Error != nil {
				errs = append(errs, &driver.PartitionError{TopicPartition: tp, Err: p.Error})
				continue
			}
			switch at {
			case polykafka.OffsetEarliest:
				out[tp] = p.FirstOffset
			case polykafka.OffsetLatest:
				out[tp] = p.LastOffset
			default:
				out[tp] = -1
				for off := range p.Offsets {
					out[tp] = off
				}
			}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok && len(errs) == 0 {
			errs = append(errs, &driver.PartitionError{TopicPartition: tp, Err: kafka.UnknownTopicOrPartition})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// PartitionCounts implements driver.PartitionCounter with an uncached
// metadata request (kafka.Conn.ReadPartitions).
func (k cluster) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	if k.closed() {
		return nil, errClosed
	}
	ctx, cancel := k.b.opCtx(ctx)
	defer cancel()
	return partitionCounts(ctx, k.dialer, k.b.conn.Brokers, topics)
}

// CommitAsAdmin implements driver.Admin with kafka.Client.OffsetCommit,
// GenerationID -1 and no MemberID.
func (k cluster) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if k.closed() {
		return errClosed
	}
	if len(offsets) == 0 {
		return nil
	}
	return commitOffsets(ctx, k.b, k.client, group, -1, "", offsets)
}
