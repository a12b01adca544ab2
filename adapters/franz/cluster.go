package franz

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// cluster is the adapter's cluster queries (committed offsets, offset
// listing, partition counts, commits outside a generation) and its error
// classification, written once: the consumer, reader, producer and admin
// embed it on their kgo client, with kadm on top.
type cluster struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func newCluster(cl *kgo.Client) cluster { return cluster{cl: cl, adm: kadm.NewClient(cl)} }

var (
	_ driver.OffsetLister     = cluster{}
	_ driver.PartitionCounter = cluster{}
	_ driver.ErrorCoder       = cluster{}
)

// ErrorCode implements driver.ErrorCoder.
func (cluster) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }

// committed returns group's commits in topics with kadm's FetchOffsets.
// With stable (a ReadCommitted consumer), the request requires stable
// offsets (kadm.RequireStable, KIP-447): a partition whose transactional
// commit is pending fails with UNSTABLE_OFFSET_COMMIT, and the portable
// layer waits.
func (k cluster) committed(ctx context.Context, group string, topics []string, stable bool) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	if stable {
		ctx = kadm.RequireStable(ctx)
	}
	resps, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	out := make(map[polykafka.TopicPartition]polykafka.CommittedOffset)
	for t, ps := range resps {
		if !want[t] {
			continue
		}
		for p, r := range ps {
			if r.Err != nil {
				return nil, r.Err
			}
			if r.At < 0 {
				continue
			}
			out[polykafka.TopicPartition{Topic: t, Partition: p}] = polykafka.CommittedOffset{Offset: r.At, Metadata: r.Metadata}
		}
	}
	return out, nil
}

// ListOffsets implements driver.OffsetLister with kadm's ListOffsets calls.
func (k cluster) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	var topics []string
	seen := make(map[string]bool)
	for _, tp := range tps {
		if !seen[tp.Topic] {
			seen[tp.Topic] = true
			topics = append(topics, tp.Topic)
		}
	}
	var listed kadm.ListedOffsets
	var err error
	switch {
	case at == polykafka.OffsetEarliest:
		listed, err = k.adm.ListStartOffsets(ctx, topics...)
	case at == polykafka.OffsetLatest:
		listed, err = k.adm.ListEndOffsets(ctx, topics...)
	case at >= 0:
		listed, err = k.adm.ListOffsetsAfterMilli(ctx, at, topics...)
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, "franz: ListOffsets", fmt.Sprintf("at %d is neither a special offset nor a timestamp", at), nil)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[polykafka.TopicPartition]int64, len(tps))
	for _, tp := range tps {
		lo, ok := listed.Lookup(tp.Topic, tp.Partition)
		if !ok {
			return nil, fmt.Errorf("franz: no listed offset for %s: %w", tp, kerr.UnknownTopicOrPartition)
		}
		if lo.Err != nil {
			return nil, fmt.Errorf("franz: list offsets of %s: %w", tp, lo.Err)
		}
		out[tp] = lo.Offset
	}
	return out, nil
}

// PartitionCounts implements driver.PartitionCounter with a real Metadata
// request.
// kadm's Metadata answers from a cache up to MetadataMinAge (5s) old;
// RequestCachedMetadata with a 1ns limit sends a real request and
// refreshes that cache, so the kadm calls that follow (ListOffsets in the
// start decision) see the same partitions.
func (k cluster) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := k.cl.RequestCachedMetadata(ctx, req, time.Nanosecond)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int32, len(topics))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("topic %q: %w", *t.Topic, err)
		}
		out[*t.Topic] = int32(len(t.Partitions))
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("topic %q: %w", t, kerr.UnknownTopicOrPartition)
		}
	}
	return out, nil
}

// CommitAsAdmin implements driver.Admin with kadm's CommitOffsets, whose
// request carries each Offset's Metadata and kmsg's defaults for the
// generation (-1) and the member id (empty).
func (k cluster) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	var os kadm.Offsets
	for tp, o := range offsets {
		os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: o.Offset, LeaderEpoch: -1, Metadata: o.Metadata})
	}
	resps, err := k.adm.CommitOffsets(ctx, group, os)
	if err != nil {
		return err
	}
	var errs []error
	resps.Each(func(r kadm.OffsetResponse) {
		if r.Err != nil {
			errs = append(errs, &driver.PartitionError{TopicPartition: polykafka.TopicPartition{Topic: r.Topic, Partition: r.Partition}, Err: r.Err})
		}
	})
	return errors.Join(errs...)
}
