// Package errs builds the errors of the portable layer: one wrap per
// error, the operation that failed, and context errors kept recognisable.
package errs

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/polykafka/polykafka"
)

// Wrap classifies err and wraps it once for op. An error that already is a
// *polykafka.Error keeps its code and its message, and takes op (its own op,
// usually the adapter's, moves into the message). context.Canceled is
// returned as it is; context.DeadlineExceeded too, unless deadline says what
// was being waited for (see Deadline). classify may be nil (Unknown).
func Wrap(op string, err error, classify func(error) polykafka.ErrorCode) error {
	if err == nil {
		return nil
	}
	var pe *polykafka.Error
	if errors.Is(err, context.Canceled) || (errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &pe)) {
		// A context error is returned as it is; a classified error that
		// also says its deadline expired still gets the operation the
		// user called in front (it keeps matching DeadlineExceeded).
		return err
	}
	if errors.As(err, &pe) {
		if pe.Op == op {
			return err
		}
		if top, ok := err.(*polykafka.Error); ok {
			return &polykafka.Error{Code: top.Code, Op: op, Msg: join(top.Op, top.Msg), Err: top.Err}
		}
		// err wraps an *Error with text of its own: keep err whole.
		return &polykafka.Error{Code: pe.Code, Op: op, Err: err}
	}
	code := polykafka.Unknown
	if classify != nil {
		code = classify(err)
	}
	return &polykafka.Error{Code: code, Op: op, Err: err}
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}

// Deadline returns the error of op whose context ended while it waited for
// the cluster: context.Canceled as it is (the caller gave up), and for an
// expired deadline an Unavailable *polykafka.Error saying what did not
// answer, which still matches errors.Is(err, context.DeadlineExceeded), and
// wraps last (the last error seen while waiting, if any) too.
func Deadline(op, msg string, ctxErr, last error) error {
	if errors.Is(ctxErr, context.Canceled) {
		return ctxErr
	}
	if ctxErr == nil {
		ctxErr = context.DeadlineExceeded
	}
	inner := ctxErr
	if last != nil && !errors.Is(last, context.DeadlineExceeded) && !errors.Is(last, context.Canceled) {
		msg = join(msg, strings.TrimSpace(last.Error()))
		inner = &joined{errs: []error{last, ctxErr}}
	}
	return &polykafka.Error{Code: polykafka.Unavailable, Op: op, Msg: msg, Err: inner}
}

// joined wraps several errors for errors.Is/As and prints only the last
// (the context error: the first is already in the message).
type joined struct{ errs []error }

func (j *joined) Error() string   { return j.errs[len(j.errs)-1].Error() }
func (j *joined) Unwrap() []error { return j.errs }

// Transport reports whether err is the network failing underneath a
// client: a net.Error, a closed or reset connection, a connection cut
// mid-response (io.EOF, io.ErrUnexpectedEOF) or refused. Every adapter and
// store classifies these as Unavailable; this is the one list of them.
func Transport(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
