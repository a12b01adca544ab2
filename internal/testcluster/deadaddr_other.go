//go:build !unix

package testcluster

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// DeadAddress returns a loopback address nothing listens on (a port just
// freed; on unix systems it stays reserved for the test instead).
func DeadAddress(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
