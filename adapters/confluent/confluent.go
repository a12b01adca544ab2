//go:build cgo

package confluent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// Backend opens confluent-kafka-go consumers and producers. It implements
// driver.Backend; pass it to consumer.New and producer.New.
type Backend struct {
	conn polykafka.Connection
	cfg  kafka.ConfigMap
}

// New returns a backend whose clients reach the cluster through conn and
// are configured with cfg, librdkafka's native properties, which win over
// what the adapter derives from conn (see the package doc, "#
// Configuration", for the properties the adapter sets itself). cfg may be
// nil; it is copied.
func New(conn polykafka.Connection, cfg kafka.ConfigMap) *Backend {
	c := make(kafka.ConfigMap, len(cfg))
	for k, v := range cfg {
		c[k] = v
	}
	return &Backend{conn: conn, cfg: c}
}

// Name implements driver.Backend.
func (*Backend) Name() string { return "confluent" }

var _ driver.Backend = (*Backend)(nil)

// baseConfig returns the connection properties derived from b.conn, then
// b.cfg on top of them.
func (b *Backend) baseConfig(op string) (kafka.ConfigMap, error) {
	if err := b.conn.Validate(); err != nil {
		// A native bootstrap.servers is enough.
		if _, ok := b.cfg["bootstrap.servers"]; !ok || len(b.conn.Brokers) > 0 {
			return nil, err
		}
	}
	m := kafka.ConfigMap{
		"client.id": b.conn.ClientIDOr("polykafka"),
		// librdkafka logs to stderr unless told otherwise; the adapter
		// reads the logs channel and writes to slog.
		"go.logs.channel.enable": true,
	}
	if len(b.conn.Brokers) > 0 {
		m["bootstrap.servers"] = strings.Join(b.conn.Brokers, ",")
	}
	proto := "plaintext"
	if t := b.conn.TLS; t != nil || len(b.conn.RootCAsPEM) > 0 {
		proto = "ssl"
		if t != nil {
			if err := b.tlsConfig(op, t, m); err != nil {
				return nil, err
			}
		}
		if len(b.conn.RootCAsPEM) > 0 {
			m["ssl.ca.pem"] = string(b.conn.RootCAsPEM)
		}
	}
	if s := b.conn.SASL; s != nil {
		if proto == "ssl" {
			proto = "sasl_ssl"
		} else {
			proto = "sasl_plaintext"
		}
		m["sasl.mechanisms"] = string(s.Mechanism)
		m["sasl.username"] = s.Username
		m["sasl.password"] = s.Password
	}
	m["security.protocol"] = proto
	for k, v := range b.cfg {
		m[k] = v
	}
	return m, nil
}

// tlsConfig sets in m the librdkafka properties of what t says, and fails
// with code Unimplemented, naming the field, for what librdkafka cannot
// be given.
func (b *Backend) tlsConfig(op string, t *tls.Config, m kafka.ConfigMap) error {
	unimplemented := func(field, why string) error {
		return polykafka.NewError(polykafka.Unimplemented, op, "Connection.TLS."+field+": "+why, nil)
	}
	switch {
	case t.RootCAs != nil && !hasAny(b.cfg, "ssl.ca.location", "ssl.ca.pem", "ssl.ca.certificate.stores"):
		// An x509.CertPool cannot be read back.
		return unimplemented("RootCAs", "librdkafka cannot be given an x509.CertPool; "+
			"give the CA certificates as PEM in Connection.RootCAsPEM (every backend takes it), or set ssl.ca.pem or ssl.ca.location in the native ConfigMap")
	case t.ServerName != "":
		return unimplemented("ServerName", "librdkafka verifies each broker's own host name and has no override")
	case t.VerifyPeerCertificate != nil || t.VerifyConnection != nil:
		return unimplemented("VerifyPeerCertificate and VerifyConnection", "librdkafka cannot call Go to verify a certificate")
	case t.GetClientCertificate != nil:
		return unimplemented("GetClientCertificate", "librdkafka cannot call Go for a certificate; give it in Certificates")
	}
	if t.InsecureSkipVerify {
		m["enable.ssl.certificate.verification"] = false
	}
	if len(t.Certificates) > 0 {
		crt := t.Certificates[0]
		var chain []byte
		for _, der := range crt.Certificate {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		key, err := x509.MarshalPKCS8PrivateKey(crt.PrivateKey)
		if err != nil {
			return polykafka.NewError(polykafka.InvalidArgument, op, "Connection.TLS.Certificates[0]: the private key cannot be given to librdkafka", err)
		}
		m["ssl.certificate.pem"] = string(chain)
		m["ssl.key.pem"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
	}
	return nil
}

func hasAny(m kafka.ConfigMap, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// errClosed is returned by calls on a closed consumer or producer.
var errClosed = kafka.NewError(kafka.ErrState, "confluent: client closed", false)

// errorCode is the classification shared by the consumer and the producer.
// kafka.Error carries either a Kafka protocol code (>= 0), classified by
// polykafka.CodeForKafka, or one of librdkafka's own (negative) codes.
func errorCode(err error) polykafka.ErrorCode {
	if err == nil {
		return polykafka.OK
	}
	if errors.Is(err, errClosed) {
		return polykafka.Closed
	}
	var pe *polykafka.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	var ke kafka.Error
	if !errors.As(err, &ke) {
		return polykafka.Unknown
	}
	code := ke.Code()
	if code >= 0 {
		return polykafka.CodeForKafka(int16(code))
	}
	switch code {
	case kafka.ErrAutoOffsetReset:
		return polykafka.OffsetOutOfRange
	case kafka.ErrUnknownTopic:
		return polykafka.NotFound
	case kafka.ErrUnknownPartition:
		// librdkafka fails a record sent to a partition the topic does
		// not have (per its metadata) with this local code: the record's
		// Partition is invalid.
		return polykafka.InvalidArgument
	case kafka.ErrInvalidArg, kafka.ErrBadMsg, kafka.ErrInvalidType, kafka.ErrInvalidDifferentRecord:
		return polykafka.InvalidArgument
	case kafka.ErrNotImplemented, kafka.ErrUnsupportedFeature:
		return polykafka.Unimplemented
	case kafka.ErrAuthentication, kafka.ErrSsl:
		return polykafka.PermissionDenied
	case kafka.ErrDestroy, kafka.ErrPurgeQueue, kafka.ErrPurgeInflight:
		return polykafka.Closed
	case kafka.ErrFenced:
		// librdkafka's "fenced by a newer instance": a static member or a
		// transactional producer replaced by another with the same id.
		return polykafka.Fenced
	case kafka.ErrAssignmentLost, kafka.ErrMaxPollExceeded, kafka.ErrPrevInProgress:
		return polykafka.Rebalancing
	case kafka.ErrTransport, kafka.ErrAllBrokersDown, kafka.ErrTimedOut, kafka.ErrTimedOutQueue,
		kafka.ErrMsgTimedOut, kafka.ErrResolve, kafka.ErrWaitCoord, kafka.ErrQueueFull,
		kafka.ErrNodeUpdate, kafka.ErrRetry, kafka.ErrOutdated,
		kafka.ErrInProgress, kafka.ErrWaitCache:
		return polykafka.Unavailable
	case kafka.ErrState:
		if strings.Contains(ke.Error(), "closed client") {
			return polykafka.Closed
		}
	}
	return polykafka.Unknown
}

// timeoutMs converts ctx's deadline to a librdkafka timeout in
// milliseconds: at least 1, at most limit (used when ctx has no deadline).
func timeoutMs(ctx context.Context, limit time.Duration) int {
	d := limit
	if dl, ok := ctx.Deadline(); ok {
		d = min(time.Until(dl), limit)
	}
	return int(max(d.Milliseconds(), 1))
}

// maxCallTimeout bounds librdkafka calls made with a context that has no
// deadline, so that the goroutine running them ends.
const maxCallTimeout = 60 * time.Second

// logBridge writes librdkafka's log events (syslog levels) to l until logs
// is closed. librdkafka's informational messages go to slog's debug level:
// at info level the portable layer already reports what matters.
func logBridge(l *slog.Logger, logs <-chan kafka.LogEvent, done chan<- struct{}) {
	defer close(done)
	for ev := range logs {
		lvl := slog.LevelDebug
		switch {
		case ev.Level <= 3: // emerg, alert, crit, err
			lvl = slog.LevelError
		case ev.Level == 4: // warning
			lvl = slog.LevelWarn
		}
		l.Log(context.Background(), lvl, "librdkafka: "+ev.Message, "tag", ev.Tag, "client", ev.Name)
	}
}

// startLogs starts the log bridge if the client's logs channel is the one
// the adapter enabled (not one the application supplied through
// go.logs.channel, which it reads itself). The returned channel is closed
// when the bridge has ended, after the client is closed.
func startLogs(cfg kafka.ConfigMap, l *slog.Logger, logs chan kafka.LogEvent) <-chan struct{} {
	done := make(chan struct{})
	if _, own := cfg["go.logs.channel"]; own || logs == nil {
		close(done)
		return done
	}
	go logBridge(l, logs, done)
	return done
}

func opErr(code polykafka.ErrorCode, op string, err error) error {
	return polykafka.NewError(code, "confluent: "+op, "", err)
}

func topicPartition(tp kafka.TopicPartition) polykafka.TopicPartition {
	var t string
	if tp.Topic != nil {
		t = *tp.Topic
	}
	return polykafka.TopicPartition{Topic: t, Partition: tp.Partition}
}

func nativeTP(tp polykafka.TopicPartition, off kafka.Offset) kafka.TopicPartition {
	t := tp.Topic
	return kafka.TopicPartition{Topic: &t, Partition: tp.Partition, Offset: off}
}

func describe(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }
