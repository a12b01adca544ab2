package polykafka

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// Connection is how a backend reaches the cluster, in terms every adapter
// understands. Every adapter's constructor takes a Connection first and its
// client's native options after it (native options win where they
// overlap), so that switching the backend changes one line:
//
//	conn := polykafka.Connection{Brokers: []string{"kafka-1:9092"}, SASL: &polykafka.SASL{...}}
//	b := franz.New(conn)              // or sarama.New(conn, nil), kafkago.New(conn), ...
type Connection struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string
	// ClientID is the client id sent with every request. Empty means the
	// adapter's default ("polykafka").
	ClientID string
	// TLS enables TLS with this configuration. Nil means plaintext.
	TLS *tls.Config
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
	const op = "polykafka: Connection"
	bad := func(msg string) error { return NewError(InvalidArgument, op, msg, nil) }
	if len(c.Brokers) == 0 {
		return bad("Connection.Brokers is empty")
	}
	for i, b := range c.Brokers {
		if j := strings.LastIndexByte(b, ':'); j <= 0 || j == len(b)-1 {
			return bad(fmt.Sprintf("Connection.Brokers[%d]: %q is not host:port", i, b))
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

// ClientIDOr returns c.ClientID, or def if it is empty.
func (c Connection) ClientIDOr(def string) string {
	if c.ClientID == "" {
		return def
	}
	return c.ClientID
}
