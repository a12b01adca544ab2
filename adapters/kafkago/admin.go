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
	cluster
	isClosed atomic.Bool
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
	a := &admin{cluster: b.newCluster(d, tr)}
	a.cluster.closed = a.isClosed.Load
	return a, nil
}

// GroupState implements driver.Admin with kafka.Client.DescribeGroups.
func (a *admin) GroupState(ctx context.Context, group string) (driver.GroupState, error) {
	if a.isClosed.Load() {
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
	out, err := a.committed(ctx, group, topics)
	if errors.Is(err, kafka.GroupIdNotFound) {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil // kfake's answer for a group it does not know
	}
	return out, err
}

// Close implements driver.Admin: it closes the idle connections of the
// transport the adapter built (a Transport of yours is left alone).
func (a *admin) Close(context.Context) error {
	if a.isClosed.Swap(true) {
		return nil
	}
	if a.b.opts.Transport == nil {
		a.tr.CloseIdleConnections()
	}
	return nil
}
