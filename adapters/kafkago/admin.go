package kafkago

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/segmentio/kafka-go"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// admin sends group and offset requests with a kafka.Client and metadata
// requests on the dialer's connections; it joins no group.
type admin struct {
	b      *Backend
	dialer *kafka.Dialer
	tr     *kafka.Transport
	client *kafka.Client
	closed atomic.Bool
}

var (
	_ driver.Administrator = (*Backend)(nil)
	_ driver.Admin         = (*admin)(nil)
)

// OpenAdmin implements driver.Administrator. It connects to nothing until
// the first request.
func (b *Backend) OpenAdmin(ctx context.Context, _ driver.AdminConfig) (driver.Admin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, tr, err := b.natives()
	if err != nil {
		return nil, err
	}
	return &admin{b: b, dialer: d, tr: tr, client: &kafka.Client{Addr: b.addr(), Transport: tr}}, nil
}

// GroupState implements driver.Admin with kafka.Client.DescribeGroups.
func (a *admin) GroupState(ctx context.Context, group string) (driver.GroupState, error) {
	if a.closed.Load() {
		return driver.GroupState{}, errClosed
	}
	ctx, cancel := a.b.opCtx(ctx)
	defer cancel()
	res, err := a.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return driver.GroupState{}, err
	}
	for _, g := range res.Groups {
		if g.GroupID != group {
			continue
		}
		switch {
		case errors.Is(g.Error, kafka.GroupIdNotFound):
			return driver.GroupState{State: "Dead"}, nil
		case g.Error != nil:
			return driver.GroupState{}, fmt.Errorf("describe group %q: %w", group, g.Error)
		}
		return driver.GroupState{State: g.GroupState, Members: len(g.Members)}, nil
	}
	return driver.GroupState{}, fmt.Errorf("describe group %q: no answer for the group: %w", group, kafka.GroupCoordinatorNotAvailable)
}

// Committed implements driver.Admin with kafka.Client.OffsetFetch.
func (a *admin) Committed(ctx context.Context, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	if a.closed.Load() {
		return nil, errClosed
	}
	out, err := committed(ctx, a.b, a.client, a.dialer, group, topics)
	if errors.Is(err, kafka.GroupIdNotFound) {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil // kfake's answer for a group it does not know
	}
	return out, err
}

// ListOffsets implements driver.Admin with kafka.Client.ListOffsets.
func (a *admin) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	if a.closed.Load() {
		return nil, errClosed
	}
	return listOffsets(ctx, a.b, a.tr, tps, at)
}

// PartitionCounts implements driver.Admin.
func (a *admin) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	if a.closed.Load() {
		return nil, errClosed
	}
	ctx, cancel := a.b.opCtx(ctx)
	defer cancel()
	return partitionCounts(ctx, a.dialer, a.b.conn.Brokers, topics)
}

// CommitAsAdmin implements driver.Admin with kafka.Client.OffsetCommit,
// GenerationID -1 and no MemberID.
func (a *admin) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if a.closed.Load() {
		return errClosed
	}
	if len(offsets) == 0 {
		return nil
	}
	return commitOffsets(ctx, a.b, a.client, group, -1, "", offsets)
}

// Close implements driver.Admin: it closes the idle connections of the
// transport the adapter built (a Transport of yours is left alone).
func (a *admin) Close(context.Context) error {
	if a.closed.Swap(true) {
		return nil
	}
	if a.b.opts.Transport == nil {
		a.tr.CloseIdleConnections()
	}
	return nil
}

// ErrorCode implements driver.Admin.
func (*admin) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }
