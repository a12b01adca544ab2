package polysarama

// Leaving during a join. sarama sends a group's JoinGroup and SyncGroup
// holding the coordinator broker's lock until the answer arrives
// (Broker.sendAndReceive), takes no context for them, and
// ConsumerGroup.Close waits for Consume, which waits for them: a member
// closed while its JoinGroup waits for a member slow to rejoin would wait
// as long as the group takes to rebalance (up to the rebalance timeout),
// its Close give up, and the member, still joining, be assigned partitions
// it never reads. Broker.Close cannot end the request (it needs the same
// lock). So the group's client dials through groupConns (sarama's
// Net.Proxy.Dialer), and when Close finds the member between sessions
// inside Consume (joining or syncing), it closes those connections: the
// request fails at once, Consume returns, the adapter closes sarama's
// brokers (so that none keeps a cut connection), and ConsumerGroup.Close
// leaves with the member id sarama kept, on a new connection.

import (
	"net"
	"sync"

	"github.com/IBM/sarama"
	"golang.org/x/net/proxy"
)

// groupConns dials the group client's connections and can cut them all.
type groupConns struct {
	base proxy.Dialer

	mu    sync.Mutex
	conns map[*groupConn]struct{}
}

// dialThrough makes sc dial through a new groupConns: the dialer sarama
// would use otherwise (sc's own proxy dialer, or a net.Dialer with its Net
// settings) underneath. sarama applies TLS on top, as it does to its own.
func dialThrough(sc *sarama.Config) *groupConns {
	g := &groupConns{conns: make(map[*groupConn]struct{})}
	if sc.Net.Proxy.Enable && sc.Net.Proxy.Dialer != nil {
		g.base = sc.Net.Proxy.Dialer
	} else {
		g.base = &net.Dialer{Timeout: sc.Net.DialTimeout, KeepAlive: sc.Net.KeepAlive, LocalAddr: sc.Net.LocalAddr}
	}
	sc.Net.Proxy.Enable = true
	sc.Net.Proxy.Dialer = g
	return g
}

// Dial implements proxy.Dialer.
func (g *groupConns) Dial(network, addr string) (net.Conn, error) {
	conn, err := g.base.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	gc := &groupConn{Conn: conn, g: g}
	g.mu.Lock()
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	return gc, nil
}

// cut closes every open connection; later dials work as before.
func (g *groupConns) cut() {
	g.mu.Lock()
	conns := make([]*groupConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type groupConn struct {
	net.Conn
	g *groupConns
}

// Close implements net.Conn.
func (c *groupConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}
