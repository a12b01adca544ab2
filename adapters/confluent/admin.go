//go:build cgo

package confluent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// admin is a kafka.AdminClient derived from a kafka.Producer that sends
// nothing (the binding's NewAdminClient creates a producer instance too,
// but has no logs channel): it joins no group.
type admin struct {
	kp       *kafka.Producer
	ac       *kafka.AdminClient
	logsDone <-chan struct{}

	// life is read-locked around every call into the client and
	// write-locked by Close before the client is destroyed.
	life   sync.RWMutex
	closed bool // guarded by life
}

var (
	_ driver.Administrator = (*Backend)(nil)
	_ driver.Admin         = (*admin)(nil)
)

// OpenAdmin implements driver.Administrator: an AdminClient derived
// (NewAdminClientFromProducer) from a kafka.Producer on the connection's
// properties and the native ConfigMap (consumer properties in it are
// ignored by librdkafka, with a warning in the logs).
func (b *Backend) OpenAdmin(ctx context.Context, cfg driver.AdminConfig) (driver.Admin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := b.baseConfig("OpenAdmin")
	if err != nil {
		return nil, err
	}
	m["go.delivery.reports"] = false // it produces nothing
	kp, err := kafka.NewProducer(&m)
	if err != nil {
		return nil, opErr(polykafka.InvalidArgument, "OpenAdmin", err)
	}
	a := &admin{kp: kp}
	a.logsDone = startLogs(m, cfg.Logger, kp.Logs())
	if a.ac, err = kafka.NewAdminClientFromProducer(kp); err != nil {
		kp.Close()
		<-a.logsDone
		return nil, err
	}
	return a, nil
}

// call runs f unless the admin client is closed; Close waits for it. f
// honours ctx (the binding's admin calls return when it ends).
func (a *admin) call(f func() error) error {
	a.life.RLock()
	defer a.life.RUnlock()
	if a.closed {
		return errClosed
	}
	return f()
}

// GroupState implements driver.Admin with DescribeConsumerGroups.
func (a *admin) GroupState(ctx context.Context, group string) (driver.GroupState, error) {
	var st driver.GroupState
	err := a.call(func() error {
		tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
		defer cancel()
		res, err := a.ac.DescribeConsumerGroups(tctx, []string{group})
		if err != nil {
			return describe(fmt.Sprintf("describe group %q", group), err)
		}
		for _, g := range res.ConsumerGroupDescriptions {
			if g.GroupID != group {
				continue
			}
			switch g.Error.Code() {
			case kafka.ErrNoError:
			case kafka.ErrGroupIDNotFound:
				st = driver.GroupState{State: "Dead"}
				return nil
			default:
				return describe(fmt.Sprintf("describe group %q", group), g.Error)
			}
			st = driver.GroupState{State: g.State.String(), Members: len(g.Members)}
			return nil
		}
		return describe(fmt.Sprintf("describe group %q", group), kafka.NewError(kafka.ErrCoordinatorNotAvailable, "no answer for the group", false))
	})
	return st, err
}

// Committed implements driver.Admin with ListConsumerGroupOffsets. A group
// that does not exist has no commits.
func (a *admin) Committed(ctx context.Context, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	var out map[polykafka.TopicPartition]polykafka.CommittedOffset
	err := a.call(func() (err error) {
		out, err = committed(ctx, a.ac, group, topics)
		return err
	})
	var ke kafka.Error
	if errors.As(err, &ke) && ke.Code() == kafka.ErrGroupIDNotFound {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListOffsets implements driver.Admin with the admin API's ListOffsets
// (read_uncommitted, the binding's default).
func (a *admin) ListOffsets(ctx context.Context, tps []polykafka.TopicPartition, at int64) (map[polykafka.TopicPartition]int64, error) {
	var out map[polykafka.TopicPartition]int64
	err := a.call(func() (err error) {
		out, err = listOffsets(ctx, a.ac, a.ac, tps, at)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PartitionCounts implements driver.Admin with GetMetadata, one request
// per topic.
func (a *admin) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	var out map[string]int32
	err := a.call(func() (err error) {
		out, err = partitionCounts(ctx, a.ac, topics)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CommitAsAdmin implements driver.Admin with AlterConsumerGroupOffsets:
// librdkafka sends one OffsetCommit request with generation -1, no member
// id, and each TopicPartition's Metadata.
func (a *admin) CommitAsAdmin(ctx context.Context, group string, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	tps := make([]kafka.TopicPartition, 0, len(offsets))
	for tp, o := range offsets {
		ktp := nativeTP(tp, kafka.Offset(o.Offset))
		md := o.Metadata
		ktp.Metadata = &md
		tps = append(tps, ktp)
	}
	return a.call(func() error {
		tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
		defer cancel()
		res, err := a.ac.AlterConsumerGroupOffsets(tctx, []kafka.ConsumerGroupTopicPartitions{{Group: group, Partitions: tps}})
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

// Close implements driver.Admin: it waits for the calls in flight, then
// closes the client.
func (a *admin) Close(context.Context) error {
	a.life.Lock()
	if a.closed {
		a.life.Unlock()
		return errClosed
	}
	a.closed = true
	a.life.Unlock()
	a.ac.Close()
	a.kp.Close()
	<-a.logsDone
	return nil
}

// ErrorCode implements driver.Admin.
func (*admin) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }
