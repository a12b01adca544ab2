package kafkago

// Telling a lost assignment from a revoked one. kafka-go ends a generation
// when a heartbeat fails and drops the error (consumergroup.go
// heartbeatLoop), so a member cannot know whether the coordinator asked it
// to rebalance (REBALANCE_IN_PROGRESS: its partitions are revoked and its
// commits still succeed) or forgot it (UNKNOWN_MEMBER_ID,
// ILLEGAL_GENERATION, FENCED_INSTANCE_ID: its partitions are lost). The
// group's coordinator connections are dialed through the Dialer's DialFunc,
// so the adapter wraps them and reads the error code of each heartbeat
// response as it passes. The only bytes changed on these connections are
// the version labels of JoinGroup subscriptions (subscription.go).

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"
)

const (
	apiHeartbeat = 12
	apiSyncGroup = 14
)

// Heartbeat error codes that mean the member no longer belongs to its
// generation.
func lostCode(code int16) bool {
	switch code {
	case 22, 25, 82: // ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID
		return true
	}
	return false
}

// groupConns is the set of a group's open coordinator connections, so that
// Close can abort a JoinGroup or SyncGroup in flight. kafka.ConsumerGroup
// waits for those however long the group takes to rebalance (up to its
// RebalanceTimeout plus Timeout) and gives Close no way to stop them: a
// member closed during a rebalance that another member holds up would
// wait, its Close give up, and the member, still joining in the
// background, be assigned partitions it never reads.
//
// Only a member that knows its member id is cut, because it can then
// leave with it. kafka-go joins with JoinGroup v1, which gets the id of a
// new member only in the response: a first join cut in flight would leave
// the coordinator a member that no client knows, which it expels only at
// its session timeout (never, on kfake, which arms that timer when a
// response reaches the member), and which holds every rebalance until
// then. A first join is left to finish: kafka-go then leaves with the id
// it got (consumergroup.go run, ErrGroupClosed), and Close waits for that
// until its deadline.
type groupConns struct {
	mu      sync.Mutex
	conns   map[*watchedConn]struct{}
	closing bool
	aborted bool // a join or sync was cut by abort
	// known reports whether the member id is known (consumer.member).
	known func() bool
}

// cuttable reports whether a join or sync in flight may be cut.
func (g *groupConns) cuttable() bool { return g.known == nil || g.known() }

// abort cuts every JoinGroup and SyncGroup in flight, and any sent later,
// by closing their connections; other requests (LeaveGroup, commits) pass.
// After it, cutJoin reports whether one was cut: the member may then still
// be in the group, and must leave by itself.
func (g *groupConns) abort() {
	g.mu.Lock()
	g.closing = true
	conns := make([]*watchedConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	if !g.cuttable() {
		return
	}
	for _, c := range conns {
		c.mu.Lock()
		waiting := len(c.waits) > 0
		c.mu.Unlock()
		if waiting {
			g.cut(c)
		}
	}
}

func (g *groupConns) cut(c *watchedConn) {
	g.mu.Lock()
	g.aborted = true
	g.mu.Unlock()
	_ = c.Conn.Close()
}

// cutJoin reports whether abort cut a JoinGroup or SyncGroup.
func (g *groupConns) cutJoin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.aborted
}

func (g *groupConns) add(c *watchedConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil {
		g.conns = make(map[*watchedConn]struct{})
	}
	g.conns[c] = struct{}{}
}

func (g *groupConns) remove(c *watchedConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c)
}

func (g *groupConns) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// watchingDialer returns a copy of d whose connections report heartbeat
// error codes to note and belong to group. It does d's TLS itself, so that
// it sees the plain protocol.
func watchingDialer(d *kafka.Dialer, group *groupConns, note func(code int16), member func(id string)) *kafka.Dialer {
	w := *d
	base := d.DialFunc
	tlsCfg := d.TLS
	w.TLS = nil
	w.DialFunc = func(ctx context.Context, network, address string) (net.Conn, error) {
		dial := base
		if dial == nil {
			dial = (&net.Dialer{
				LocalAddr:     d.LocalAddr,
				FallbackDelay: d.FallbackDelay,
				KeepAlive:     d.KeepAlive,
			}).DialContext
		}
		conn, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if tlsCfg != nil {
			cfg := tlsCfg
			if cfg.ServerName == "" {
				cfg = tlsCfg.Clone()
				host := address
				if i := strings.LastIndex(address, ":"); i >= 0 {
					host = address[:i]
				}
				cfg.ServerName = host
			}
			tc := tls.Client(conn, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			conn = tc
		}
		wc := &watchedConn{Conn: conn, note: note, group: group, pending: make(map[int32]int16), waits: make(map[int32]bool)}
		wc.out = frameScanner{capture: 8, frame: wc.request}
		wc.in = frameScanner{capture: 10, frame: wc.response}
		wc.join.member = member
		wc.join.refuse = func() bool { return group.isClosing() && group.cuttable() }
		group.add(wc)
		return wc, nil
	}
	return &w
}

// watchedConn is a coordinator connection whose heartbeat responses are
// read as they pass.
type watchedConn struct {
	net.Conn
	note  func(int16)
	group *groupConns

	mu      sync.Mutex
	pending map[int32]int16 // correlation id -> heartbeat version
	waits   map[int32]bool  // correlation ids of JoinGroup and SyncGroup in flight
	out, in frameScanner

	wmu  sync.Mutex // serializes Write: relabel's state follows the stream
	join joinRelabeler
}

// Write hands p on with the JoinGroup subscriptions relabeled
// (subscription.go). A JoinGroup or SyncGroup request is held until its
// last byte is written; p counts as written once handed on. Once the group
// is closing, a JoinGroup or SyncGroup of a member whose id is known is
// not sent: the connection is cut instead.
func (c *watchedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.join.process(p)
	if len(b) > 0 {
		n, err := c.Conn.Write(b)
		c.mu.Lock()
		c.out.feed(b[:n])
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	if c.join.dropped {
		// A JoinGroup or SyncGroup of a closing group, refused before it
		// was sent: the coordinator never sees a request its member
		// abandons. (kfake counts a member waiting in a SyncGroup as
		// joining when it leaves, and then waits a rebalance timeout
		// for a join that never comes.)
		c.group.cut(c)
		return 0, net.ErrClosed
	}
	return len(p), nil // all held, or handed on
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.feed(p[:n])
	c.mu.Unlock()
	return n, err
}

// Close implements net.Conn.
func (c *watchedConn) Close() error {
	c.group.remove(c)
	return c.Conn.Close()
}

// request sees the start of a request: api key, version, correlation id.
// A JoinGroup or SyncGroup sent once the group is closing is cut at once,
// if the member id is known.
func (c *watchedConn) request(b []byte) {
	if len(b) < 8 {
		return
	}
	corr := int32(binary.BigEndian.Uint32(b[4:]))
	switch key := int16(binary.BigEndian.Uint16(b)); key {
	case apiHeartbeat:
		c.pending[corr] = int16(binary.BigEndian.Uint16(b[2:]))
	case apiJoinGroup, apiSyncGroup:
		c.waits[corr] = true
		if c.group.isClosing() && c.group.cuttable() {
			go c.group.cut(c) // c.mu is held
		}
	}
}

// response sees the start of a response: correlation id, then the body.
func (c *watchedConn) response(b []byte) {
	if len(b) < 4 {
		return
	}
	corr := int32(binary.BigEndian.Uint32(b))
	delete(c.waits, corr)
	v, ok := c.pending[corr]
	if !ok {
		return
	}
	delete(c.pending, corr)
	body := b[4:]
	if v >= 1 && v <= 3 {
		body = body[min(4, len(body)):] // throttle_time_ms
	} else if v != 0 {
		return // flexible versions: kafka-go sends v0
	}
	if len(body) >= 2 {
		if code := int16(binary.BigEndian.Uint16(body)); code != 0 {
			c.note(code)
		}
	}
}

// frameScanner follows a stream of size-prefixed Kafka frames and hands
// the first capture bytes of each frame to frame.
type frameScanner struct {
	capture int
	frame   func([]byte)

	size   [4]byte
	sn     int
	body   [16]byte
	bn     int
	want   int
	remain int // bytes of the current frame after the captured ones
	skip   int
}

func (s *frameScanner) feed(p []byte) {
	for len(p) > 0 {
		switch {
		case s.skip > 0:
			k := min(s.skip, len(p))
			s.skip -= k
			p = p[k:]
		case s.sn < 4:
			k := copy(s.size[s.sn:], p)
			s.sn += k
			p = p[k:]
			if s.sn == 4 {
				size := int(int32(binary.BigEndian.Uint32(s.size[:])))
				s.want = max(min(size, s.capture), 0)
				s.remain = max(size-s.want, 0)
				s.bn = 0
				if s.want == 0 {
					s.done()
				}
			}
		default:
			k := copy(s.body[s.bn:s.want], p)
			s.bn += k
			p = p[k:]
			if s.bn == s.want {
				s.done()
			}
		}
	}
}

func (s *frameScanner) done() {
	s.frame(s.body[:s.want])
	s.sn, s.bn, s.skip = 0, 0, s.remain
}
