package polykafka

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
)

// Connection is how a backend reaches the cluster, in terms every adapter
// understands. Every adapter's constructor takes a Connection first and its
// client's native options after it (native options win where they
// overlap), so that switching the backend changes one line, the
// constructor's (the second argument is each client's own configuration;
// nil or nothing takes the adapter's defaults):
//
//	conn := polykafka.Connection{Brokers: []string{"kafka-1:9092"}, SASL: &polykafka.SASL{
//		Mechanism: polykafka.SASLScramSHA512, Username: "billing", Password: os.Getenv("KAFKA_PASSWORD"),
//	}}
//	var b driver.Backend            // any one of:
//	b = franz.New(conn)             // franz-go: ...kgo.Opt
//	b = polysarama.New(conn, nil)   // IBM/sarama: *sarama.Config
//	b = kafkago.New(conn, nil)      // segmentio/kafka-go: *kafkago.Options
//	b = confluent.New(conn, nil)    // confluent-kafka-go (cgo): kafka.ConfigMap
type Connection struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string
	// ClientID is the client id sent with every request. Empty means the
	// adapter's default ("polykafka").
	ClientID string
	// TLS enables TLS with this configuration. Nil means plaintext, unless
	// RootCAsPEM is set. Every backend translates the certificates
	// (Certificates[0]) and InsecureSkipVerify; a backend that cannot
	// express a field (confluent: RootCAs, a CertPool it cannot read back;
	// ServerName; the Verify and Get callbacks) fails OpenConsumer and
	// OpenProducer with code Unimplemented naming the field.
	TLS *tls.Config
	// RootCAsPEM are PEM-encoded CA certificates that the brokers'
	// certificates must chain to, instead of the system's: the portable
	// form of TLS.RootCAs, which every backend can use (the Go clients get
	// them as TLS.RootCAs, librdkafka as ssl.ca.pem). Setting it enables
	// TLS (with TLS's settings, if any). Nil means TLS.RootCAs, or the
	// system's CAs. Set it or TLS.RootCAs, not both.
	RootCAsPEM []byte
	// SASL enables SASL authentication. Nil means none.
	SASL *SASL
}

// SASLMechanism names a SASL mechanism.
type SASLMechanism string

// The SASL mechanisms every adapter supports.
const (
	SASLPlain       SASLMechanism = "PLAIN"
	SASLScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLScramSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// SASL is a username and password for one SASL mechanism.
type SASL struct {
	// Mechanism is the SASL mechanism. Required.
	Mechanism SASLMechanism
	// Username and Password are the credentials. Username is required.
	Username, Password string
}

// Validate returns an error with code InvalidArgument naming the first
// invalid field, or nil. Adapters call it when they open a client.
func (c Connection) Validate() error {
	const op = "polykafka" // the messages name the field, Connection.X
	bad := func(msg string) error { return NewError(InvalidArgument, op, msg, nil) }
	if len(c.Brokers) == 0 {
		return bad("Connection.Brokers is empty")
	}
	for i, b := range c.Brokers {
		if j := strings.LastIndexByte(b, ':'); j <= 0 || j == len(b)-1 {
			return bad(fmt.Sprintf("Connection.Brokers[%d]: %q is not host:port", i, b))
		}
	}
	if len(c.RootCAsPEM) > 0 {
		if c.TLS != nil && c.TLS.RootCAs != nil {
			return bad("Connection.RootCAsPEM and Connection.TLS.RootCAs are both set: set one")
		}
		if _, err := c.rootCAs(); err != nil {
			return bad("Connection.RootCAsPEM: " + err.Error())
		}
	}
	if c.SASL != nil {
		switch c.SASL.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return bad(fmt.Sprintf("Connection.SASL.Mechanism: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", string(c.SASL.Mechanism)))
		}
		if c.SASL.Username == "" {
			return bad("Connection.SASL.Username is empty")
		}
	}
	return nil
}

// TLSConfig returns the TLS configuration a Go client dials with: nil for
// plaintext (neither TLS nor RootCAsPEM set), else a clone of TLS (or an
// empty configuration) whose RootCAs are RootCAsPEM's certificates when
// RootCAsPEM is set. The error, from an invalid RootCAsPEM, has code
// InvalidArgument; Validate reports it too.
func (c Connection) TLSConfig() (*tls.Config, error) {
	if c.TLS == nil && len(c.RootCAsPEM) == 0 {
		return nil, nil
	}
	cfg := &tls.Config{}
	if c.TLS != nil {
		cfg = c.TLS.Clone()
	}
	if len(c.RootCAsPEM) > 0 {
		pool, err := c.rootCAs()
		if err != nil {
			return nil, NewError(InvalidArgument, "polykafka", "Connection.RootCAsPEM: "+err.Error(), nil)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// rootCAs parses RootCAsPEM: every block must be a certificate, and there
// must be one at least.
func (c Connection) rootCAs() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest, n := c.RootCAsPEM, 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no PEM-encoded certificate")
	}
	return pool, nil
}

// ClientIDOr returns c.ClientID, or def if it is empty.
func (c Connection) ClientIDOr(def string) string {
	if c.ClientID == "" {
		return def
	}
	return c.ClientID
}

// redacted replaces a password wherever a Connection or SASL is printed.
const redacted = "REDACTED"

// String describes c with the SASL password redacted; it is also what %v
// and %+v print.
func (c Connection) String() string {
	sasl := "<nil>"
	if c.SASL != nil {
		sasl = c.SASL.String()
	}
	return fmt.Sprintf("polykafka.Connection{Brokers:%q ClientID:%q TLS:%t SASL:%s}", c.Brokers, c.ClientID, c.TLS != nil || len(c.RootCAsPEM) > 0, sasl)
}

// GoString is what %#v prints: String's text, the password redacted.
func (c Connection) GoString() string { return c.String() }

// LogValue implements slog.LogValuer: the password never reaches a log.
func (c Connection) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Any("brokers", c.Brokers),
		slog.String("client_id", c.ClientID),
		slog.Bool("tls", c.TLS != nil || len(c.RootCAsPEM) > 0),
	}
	if c.SASL != nil {
		attrs = append(attrs, slog.Any("sasl", c.SASL.LogValue()))
	}
	return slog.GroupValue(attrs...)
}

// String describes s with the password redacted; it is also what %v and
// %+v print.
func (s SASL) String() string {
	pw := ""
	if s.Password != "" {
		pw = redacted
	}
	return fmt.Sprintf("polykafka.SASL{Mechanism:%s Username:%q Password:%s}", s.Mechanism, s.Username, pw)
}

// GoString is what %#v prints: String's text, the password redacted.
func (s SASL) GoString() string { return s.String() }

// LogValue implements slog.LogValuer: the password never reaches a log.
func (s SASL) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", string(s.Mechanism)), slog.String("username", s.Username),
		slog.String("password", redacted))
}
