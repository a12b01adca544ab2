package franz

// Leaving during a join. kgo's JoinGroup and SyncGroup are issued on the
// client's context, not the group's (consumer_group.go joinAndSync: so that
// a last commit in OnPartitionsRevoked is not cut short), and
// LeaveGroupContext waits for the group loop: a member closed while its
// JoinGroup waits for a member slow to rejoin would wait as long as the
// group takes to rebalance (up to the rebalance timeout). Close must not:
// when a join or sync is in flight, the adapter closes the client (which
// ends it) and sends the LeaveGroup kgo can then no longer send, with the
// member id the join carried, from a short-lived client of its own. kgo's
// Close waits for the group loop too, so the client is ended first by
// cancelling its base context (kgo.WithContext, which the adapter sets:
// "canceling this context first (to interrupt blocking calls) is fine").

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinWatch follows the client's JoinGroup and SyncGroup requests through
// kgo's broker hooks: kgo issues them one at a time.
type joinWatch struct {
	inFlight atomic.Bool
	closing  atomic.Bool
	wake     chan struct{} // capacity 1: a join or sync was sent while closing
}

func newJoinWatch() *joinWatch { return &joinWatch{wake: make(chan struct{}, 1)} }

var (
	_ kgo.HookBrokerWrite = (*joinWatch)(nil)
	_ kgo.HookBrokerRead  = (*joinWatch)(nil)
)

func isJoinOrSync(key int16) bool {
	return key == int16(kmsg.JoinGroup) || key == int16(kmsg.SyncGroup)
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (w *joinWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil || !isJoinOrSync(key) {
		return
	}
	w.inFlight.Store(true)
	if w.closing.Load() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (w *joinWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if isJoinOrSync(key) {
		w.inFlight.Store(false)
	}
}

// leaveClassic leaves the group the way Close needs: through kgo when no
// join or sync is in flight, else by closing the client and sending the
// LeaveGroup itself. It closes the client either way.
func (c *consumer) leaveClassic(ctx context.Context) error {
	c.joins.closing.Store(true)
	left := make(chan error, 1)
	go func() { left <- c.cl.LeaveGroupContext(ctx) }()
	if !c.joins.inFlight.Load() {
		select {
		case err := <-left:
			c.cl.Close()
			return err
		case <-c.joins.wake:
		case <-ctx.Done():
			c.cl.Close()
			return ctx.Err()
		}
	}
	member, _ := c.cl.GroupMetadata()
	c.stop() // ends the join or sync, and kgo's leave with it
	c.cl.Close()
	if member == "" {
		return nil // never admitted: the coordinator drops it at its session timeout
	}
	return c.leaveAs(ctx, member)
}

// leaveAs sends LeaveGroup for member from a client of its own (the
// consumer's is closed), with the connection's options only.
func (c *consumer) leaveAs(ctx context.Context, member string) error {
	opts, err := c.b.plainOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = c.group
	req.MemberID = member
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = member
	m.Reason = kmsg.StringPtr("closed while joining")
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, m := range resp.Members {
		if err := kerr.ErrorForCode(m.ErrorCode); err != nil {
			return err
		}
	}
	return nil
}
