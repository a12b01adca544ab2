package netcut

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCutAndRestore(t *testing.T) {
	s := NewSwitch()
	ln, err := s.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() { // an echo server
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	echo := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, echo(c), "a connection echoes before the cut")

	s.Cut()
	require.Error(t, echo(c), "a connection open at the cut must be closed by it")
	_, err = net.Dial("tcp", ln.Addr().String())
	require.Error(t, err, "a connection is refused during the cut")

	require.NoError(t, s.Restore())
	c3, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, echo(c3), "a connection made after Restore echoes")
	require.Equal(t, 1, s.Cuts())
}
