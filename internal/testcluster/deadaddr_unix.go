//go:build unix

package testcluster

import (
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// DeadAddress returns a loopback address nothing listens on, and that
// nothing else can take while the test runs: a TCP socket bound to it but
// never listening, so that connections to it are refused. (A port merely
// freed can be taken at once by another test's broker, which then answers.)
func DeadAddress(t testing.TB) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err, "socket")
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}), "bind")
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err, "getsockname")
	port := sa.(*syscall.SockaddrInet4).Port
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
