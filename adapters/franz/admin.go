package franz

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// admin is a kgo client that joins no group, with kadm on top.
type admin struct {
	cluster
}

var (
	_ driver.Administrator = (*Backend)(nil)
	_ driver.Admin         = (*admin)(nil)
)

// OpenAdmin implements driver.Administrator. The client gets plainOpts.
func (b *Backend) OpenAdmin(_ context.Context, cfg driver.AdminConfig) (driver.Admin, error) {
	const op = "franz: OpenAdmin"
	plain, err := b.plainOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.WithLogger(slogLogger{cfg.Logger})}, plain...)...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	return &admin{cluster: newCluster(cl)}, nil
}

// GroupState implements driver.Admin with kadm's DescribeGroups.
func (a *admin) GroupState(ctx context.Context, group string) (driver.GroupState, error) {
	described, err := a.adm.DescribeGroups(ctx, group)
	if err != nil {
		return driver.GroupState{}, err
	}
	g, ok := described[group]
	switch {
	case !ok:
		return driver.GroupState{}, fmt.Errorf("describe group %q: no answer for the group: %w", group, kerr.CoordinatorNotAvailable)
	case errors.Is(g.Err, kerr.GroupIDNotFound):
		return driver.GroupState{State: "Dead"}, nil
	case g.Err != nil:
		return driver.GroupState{}, fmt.Errorf("describe group %q: %w", group, g.Err)
	}
	return driver.GroupState{State: g.State, Members: len(g.Members)}, nil
}

// Committed implements driver.Admin with kadm's FetchOffsets.
func (a *admin) Committed(ctx context.Context, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	out, err := a.committed(ctx, group, topics, false)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil // kfake's answer for a group it does not know
	}
	return out, err
}

// Close implements driver.Admin.
func (a *admin) Close(context.Context) error {
	a.cl.Close()
	return nil
}
