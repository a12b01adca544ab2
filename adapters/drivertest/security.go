package drivertest

// TLS and SASL through polykafka.Connection, the same on every backend.

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// authFailFast bounds a New or Send with a wrong password: far below
// every retry budget (DeliveryTimeout, CloseTimeout), so that a backend
// that retries an authentication failure as transient fails the case.
const authFailFast = 20 * time.Second

// authDeliveryTimeout is the DeliveryTimeout of a producer with a wrong
// password: a client that retries a failed authentication like a lost
// connection fails the record when it passes.
const authDeliveryTimeout = 5 * time.Second

func testSecureConnection(t *testing.T, e *env) {
	require.NotNil(t, e.h.Connect, "Harness.Connect is required: the case opens the backend on a Connection with TLS and SASL")
	cl, sec := testcluster.NewSecure(t)
	topic := cl.Topic(t, 1)
	logs := &captureHandler{next: e.logger.Handler(), buf: new(lockedBuilder)}
	logger := slog.New(logs)
	var errs []error
	var passwords []string

	connFor := func(u testcluster.SASLUser, password string) polykafka.Connection {
		passwords = append(passwords, password)
		return polykafka.Connection{
			Brokers:    cl.Brokers(),
			TLS:        &tls.Config{MinVersion: tls.VersionTLS12},
			RootCAsPEM: sec.CAPEM,
			SASL:       &polykafka.SASL{Mechanism: polykafka.SASLMechanism(u.Mechanism), Username: u.User, Password: password},
		}
	}
	printed := func(conn polykafka.Connection) string {
		var s strings.Builder
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&s, f+"\n", conn)
			fmt.Fprintf(&s, f+"\n", &conn)
		}
		logger.Debug("connection", "conn", conn)
		return s.String()
	}

	// Each mechanism round-trips a record over TLS (the CA given as PEM).
	for _, u := range sec.Users {
		t.Run(u.Mechanism, func(t *testing.T) {
			conn := connFor(u, u.Password)
			out := printed(conn)
			assert.NotContains(t, out, u.Password, "%s: %%v of a Connection shows no password: %s", e.rule, out)
			b := e.h.Connect(t, conn)
			ctx := e.ctx(60 * time.Second)
			p, err := producer.New(ctx, b, &producer.Options{Logger: logger, DiscoveryInterval: -1})
			require.NoError(t, err, "%s: producer.New over TLS with %s", e.rule, u.Mechanism)
			defer p.Close()
			value := "over TLS as " + u.User
			require.NoError(t, p.Send(ctx, &polykafka.Record{Topic: topic, Key: []byte(u.User), Value: []byte(value)}),
				"%s: Send over TLS with %s", e.rule, u.Mechanism)
			c, err := consumer.New(ctx, b, cl.Group(t), []string{topic},
				e.consumerOpts(&consumer.Options{Initial: discovery.Earliest, Logger: logger}))
			require.NoError(t, err, "%s: consumer.New over TLS with %s", e.rule, u.Mechanism)
			defer c.Close()
			s := newSink()
			e.run(c, s.handler)
			e.eventually(45*time.Second, func() bool { return s.values()[value] },
				"%s: a consumer over TLS with %s reads the record its producer sent", e.rule, u.Mechanism)
			assert.NoError(t, c.Close(), "consumer Close")
			assert.NoError(t, p.Close(), "producer Close")
		})
	}

	// A wrong password fails consumer.New at once, and the first Send
	// within its DeliveryTimeout, with PermissionDenied, for every
	// mechanism.
	var mu sync.Mutex
	for _, u := range sec.Users {
		mu.Lock()
		passwords = append(passwords, "wrong-"+u.Password)
		mu.Unlock()
	}
	t.Run("WrongPassword", func(t *testing.T) {
		for _, u := range sec.Users {
			t.Run(u.Mechanism, func(t *testing.T) {
				t.Parallel()
				conn := polykafka.Connection{
					Brokers:    cl.Brokers(),
					RootCAsPEM: sec.CAPEM,
					SASL:       &polykafka.SASL{Mechanism: polykafka.SASLMechanism(u.Mechanism), Username: u.User, Password: "wrong-" + u.Password},
				}
				b := e.h.Connect(t, conn)
				ctx, cancel := context.WithTimeout(context.Background(), authFailFast)
				defer cancel()
				start := time.Now()
				_, err := consumer.New(ctx, b, cl.Group(t), []string{topic}, e.consumerOpts(&consumer.Options{Logger: logger}))
				requireCode(t, e, err, polykafka.PermissionDenied, "consumer.New with a wrong "+u.Mechanism+" password")
				assert.NoError(t, ctx.Err(), "%s: a wrong password fails consumer.New before its deadline, not by it", e.rule)
				t.Logf("consumer.New failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()

				start = time.Now()
				p, err := producer.New(ctx, b, &producer.Options{Logger: logger, DiscoveryInterval: -1,
					DeliveryTimeout: authDeliveryTimeout, CloseTimeout: 5 * time.Second})
				if err == nil {
					// The backend connects lazily: the first Send fails.
					err = p.Send(ctx, &polykafka.Record{Topic: topic, Value: []byte("never")})
					_ = p.Close()
				}
				requireCode(t, e, err, polykafka.PermissionDenied, "producer.New or Send with a wrong "+u.Mechanism+" password")
				assert.NoError(t, ctx.Err(), "%s: a wrong password fails the producer before its deadline, not by it", e.rule)
				t.Logf("the producer failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
	})

	// No password in the logs of every client above or in any error.
	text := logs.buf.String()
	require.NotEmpty(t, text, "the clients logged something (the check below would be vacuous)")
	for _, pw := range passwords {
		assert.NotContains(t, text, pw, "%s: a password appears in the logs", e.rule)
		for _, err := range errs {
			for _, f := range []string{"%v", "%+v", "%#v"} {
				assert.NotContains(t, fmt.Sprintf(f, err), pw, "%s: a password appears in an error (%s)", e.rule, f)
			}
		}
	}
}

// captureHandler keeps the text of every log record at every level (the
// native clients' debug logs included) and passes the records on to next.
type captureHandler struct {
	next   slog.Handler
	attrs  []slog.Attr
	groups string
	buf    *lockedBuilder
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	// Values resolved as a handler resolves them (slog.LogValuer).
	for _, a := range h.attrs {
		b.WriteString(" " + h.groups + a.Key + "=" + a.Value.Resolve().String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + h.groups + a.Key + "=" + a.Value.Resolve().String())
		return true
	})
	h.buf.mu.Lock()
	h.buf.b.WriteString(b.String() + "\n")
	h.buf.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{next: h.next.WithAttrs(as), attrs: append(append([]slog.Attr(nil), h.attrs...), as...), groups: h.groups, buf: h.buf}
}

func (h *captureHandler) WithGroup(g string) slog.Handler {
	return &captureHandler{next: h.next.WithGroup(g), attrs: h.attrs, groups: h.groups + g + ".", buf: h.buf}
}
