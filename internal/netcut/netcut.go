// Package netcut makes network outages for tests: a Switch wraps the
// listeners of an in-process broker (kfake.ListenFn), so that a test can
// cut every connection between the clients and the broker and restore them
// later. The broker keeps its state and its addresses (the ones it
// advertises in metadata), so the clients see their broker go down and
// come back, as when a broker restarts.
//
// Cut closes every open connection and the listening sockets: clients see
// connection resets, then "connection refused", as with a stopped broker.
// Restore listens again on the same addresses.
package netcut

import (
	"net"
	"sync"
)

// Switch cuts and restores the connections of every listener made with its
// Listen. Use NewSwitch.
type Switch struct {
	mu    sync.Mutex
	cut   bool
	up    chan struct{} // closed at Restore
	lns   []*listener
	conns map[net.Conn]struct{}
	cuts  int
}

// NewSwitch returns a switch in the connected state.
func NewSwitch() *Switch {
	up := make(chan struct{})
	close(up)
	return &Switch{up: up, conns: make(map[net.Conn]struct{})}
}

// Listen is a kfake.ListenFn: net.Listen, wrapped by the switch.
func (s *Switch) Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	l := &listener{s: s, network: network, addr: ln.Addr(), ln: ln, done: make(chan struct{})}
	s.mu.Lock()
	s.lns = append(s.lns, l)
	s.mu.Unlock()
	return l, nil
}

// Cut closes every open connection and stops listening until Restore.
func (s *Switch) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return
	}
	s.cut = true
	s.cuts++
	s.up = make(chan struct{})
	for _, l := range s.lns {
		if l.ln != nil {
			_ = l.ln.Close()
			l.ln = nil
		}
	}
	for c := range s.conns {
		_ = c.Close()
		delete(s.conns, c)
	}
}

// Restore listens again on the same addresses. It returns the first error
// of listening again (the port was taken meanwhile).
func (s *Switch) Restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cut {
		return nil
	}
	var first error
	for _, l := range s.lns {
		select {
		case <-l.done:
			continue
		default:
		}
		ln, err := net.Listen(l.network, l.addr.String())
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		l.ln = ln
	}
	s.cut = false
	close(s.up)
	return first
}

// Cuts returns how many times Cut cut.
func (s *Switch) Cuts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cuts
}

type listener struct {
	s       *Switch
	network string
	addr    net.Addr
	ln      net.Listener // nil while cut; guarded by s.mu
	done    chan struct{}
	once    sync.Once
}

// Accept returns the next connection, waiting through cuts.
func (l *listener) Accept() (net.Conn, error) {
	for {
		l.s.mu.Lock()
		ln, up := l.ln, l.s.up
		l.s.mu.Unlock()
		if ln == nil {
			select {
			case <-up:
				continue
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return nil, err
			default:
			}
			l.s.mu.Lock()
			cutMeanwhile := l.ln != ln
			l.s.mu.Unlock()
			if cutMeanwhile {
				continue
			}
			return nil, err
		}
		l.s.mu.Lock()
		if l.s.cut {
			l.s.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.s.conns[c] = struct{}{}
		l.s.mu.Unlock()
		return &conn{Conn: c, s: l.s}, nil
	}
}

// Close stops the listener for good.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.ln != nil {
		err := l.ln.Close()
		l.ln = nil
		return err
	}
	return nil
}

// Addr returns the listening address, the same across cuts.
func (l *listener) Addr() net.Addr { return l.addr }

type conn struct {
	net.Conn
	s *Switch
}

func (c *conn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
