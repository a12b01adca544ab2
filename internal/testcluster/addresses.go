package testcluster

import (
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// SilentAddress returns a loopback address that accepts connections and
// never answers: a broker that hangs. The listener and its connections are
// closed when the test ends.
func SilentAddress(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}
