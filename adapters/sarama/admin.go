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

// admin is a sarama client that joins no group: requests to the group's
// coordinator and to partition leaders, as the consumer sends them.
type admin struct {
	cluster
	unlog func()

	mu     sync.Mutex
	closed bool
}

var (
	_ driver.Administrator = (*Backend)(nil)
	_ driver.Admin         = (*admin)(nil)
)

// OpenAdmin implements driver.Administrator with a sarama client configured
// like a consumer's (Metadata.Full false unless set).
func (b *Backend) OpenAdmin(ctx context.Context, cfg driver.AdminConfig) (driver.Admin, error) {
	const op = "sarama: OpenAdmin"
	sc, err := b.config()
	if err != nil {
		return nil, err
	}
	if def := sarama.NewConfig(); sc.Metadata.Full == def.Metadata.Full {
		sc.Metadata.Full = false
	}
	a := &admin{cluster: cluster{iso: sarama.ReadUncommitted}, unlog: registerLogger(cfg.Logger)}
	a.gone = a.isClosed
	cl, err := b.newClient(ctx, op, sc)
	if err != nil {
		a.unlog()
		return nil, err
	}
	a.client = cl
	if err := warmUp(ctx, &a.calls, cl); err != nil {
		_ = cl.Close()
		a.unlog()
		return nil, deadlineError(op, err)
	}
	return a, nil
}

func (a *admin) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// GroupState implements driver.Admin with a DescribeGroups request to the
// group's coordinator.
func (a *admin) GroupState(ctx context.Context, group string) (driver.GroupState, error) {
	if a.isClosed() {
		return driver.GroupState{}, errClosed
	}
	var st driver.GroupState
	err := a.calls.do(ctx, func() error {
		br, err := a.client.Coordinator(group)
		if err != nil {
			return err
		}
		resp, err := send(br, br.DescribeGroups, &sarama.DescribeGroupsRequest{Groups: []string{group}})
		if err != nil {
			_ = br.Close()
			return err
		}
		for _, g := range resp.Groups {
			if g.GroupId != group {
				continue
			}
			switch g.Err {
			case sarama.ErrNoError:
				st = driver.GroupState{State: g.State, Members: len(g.Members)}
				return nil
			case sarama.ErrGroupIDNotFound:
				st = driver.GroupState{State: "Dead"}
				return nil
			case sarama.ErrNotCoordinatorForConsumer, sarama.ErrConsumerCoordinatorNotAvailable:
				_ = a.client.RefreshCoordinator(group)
			}
			return fmt.Errorf("describe group %q: %w", group, g.Err)
		}
		return fmt.Errorf("describe group %q: %w", group, sarama.ErrIncompleteResponse)
	})
	return st, err
}

// Committed implements driver.Admin with an OffsetFetch request to the
// group's coordinator.
func (a *admin) Committed(ctx context.Context, group string, topics []string) (map[polykafka.TopicPartition]polykafka.CommittedOffset, error) {
	out, err := a.committed(ctx, group, topics, false)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return map[polykafka.TopicPartition]polykafka.CommittedOffset{}, nil // kfake's answer for a group it does not know
	}
	return out, err
}

// Close implements driver.Admin: it closes the client and waits (within
// ctx) for the requests still in flight.
func (a *admin) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	err := a.client.Close()
	a.calls.wait(ctx)
	a.unlog()
	return err
}
