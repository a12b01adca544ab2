package errs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTransport(t *testing.T) {
	for _, err := range []error{
		io.EOF,
		fmt.Errorf("producer: send: %w", io.EOF), // kgo, a connection cut mid-response
		io.ErrUnexpectedEOF,
		net.ErrClosed,
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		syscall.ECONNRESET,
		syscall.EPIPE,
	} {
		assert.True(t, Transport(err), "%v is a transport failure", err)
	}
	for _, err := range []error{errors.New("invalid record"), context.Canceled} {
		assert.False(t, Transport(err), "%v is not a transport failure", err)
	}
}
