//go:build cgo

package confluent

import (
	"context"
	"errors"
	"fmt"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// admin is a kafka.AdminClient derived from a kafka.Producer that sends
// nothing (the binding's NewAdminClient creates a producer instance too,
// but has no logs channel): it joins no group.
type admin struct {
	cluster  // its adm is the admin client
	kp       *kafka.Producer
	logsDone <-chan struct{}
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
	if a.adm, err = kafka.NewAdminClientFromProducer(kp); err != nil {
		kp.Close()
		<-a.logsDone
		return nil, err
	}
	a.md = a.adm
	return a, nil
}

// GroupState implements driver.Admin with DescribeConsumerGroups.
func (a *admin) GroupState(ctx context.Context, group string) (driver.GroupState, error) {
	var st driver.GroupState
	err := a.call(ctx, func() error {
		tctx, cancel := context.WithTimeout(ctx, maxCallTimeout)
		defer cancel()
		res, err := a.adm.DescribeConsumerGroups(tctx, []string{group})
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
	out, err := a.committed(ctx, group, topics, false)
	var ke kafka.Error
	if errors.As(err, &ke) && ke.Code() == kafka.ErrGroupIDNotFound {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
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
	a.adm.Close()
	a.kp.Close()
	<-a.logsDone
	return nil
}
