package franz

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// admin is a kgo client that joins no group, with kadm on top.
type admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

var (
	_ driver.Administrator = (*Backend)(nil)
	_ driver.Admin         = (*admin)(nil)
)

// OpenAdmin implements driver.Administrator. The client gets the
// connection's options and the native options that are neither producer,
// consumer nor group options.
func (b *Backend) OpenAdmin(_ context.Context, cfg driver.AdminConfig) (driver.Admin, error) {
	const op = "franz: OpenAdmin"
	base, err := b.clientOpts(false)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.WithLogger(slogLogger{cfg.Logger})}
	for _, o := range base {
		_, isConsumer := o.(kgo.ConsumerOpt)
		_, isGroup := o.(kgo.GroupOpt)
		if !isConsumer && !isGroup {
			opts = append(opts, o)
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	return &admin{cl: cl, adm: kadm.NewClient(cl)}, nil
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
	out, err := committed(ctx, a.adm, group, topics)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil // kfake's answer for a group it does not know
	}
	return out, err
}

// ListOffsets implements driver.Admin.
func (a *admin) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	return listOffsets(ctx, a.adm, tps, at)
}

// PartitionCounts implements driver.Admin.
func (a *admin) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	return partitionCounts(ctx, a.cl, topics)
}

// CommitAsAdmin implements driver.Admin with kadm's CommitOffsets, whose
// request carries each Offset's Metadata and kmsg's defaults for the
// generation (-1) and the member id (empty).
func (a *admin) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	var os kadm.Offsets
	for tp, o := range offsets {
		os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: o.Offset, LeaderEpoch: -1, Metadata: o.Metadata})
	}
	resps, err := a.adm.CommitOffsets(ctx, group, os)
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

// Close implements driver.Admin.
func (a *admin) Close(context.Context) error {
	a.cl.Close()
	return nil
}

// ErrorCode implements driver.Admin.
func (*admin) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }
