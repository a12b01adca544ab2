package franz_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// selfSigned returns a server TLS configuration with a new self-signed
// ECDSA certificate for 127.0.0.1 and localhost, and a pool that trusts
// it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "polykafka test broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
	}
	return server, roots
}

// saslUser is a SASL user of secureCluster: each exists for one mechanism
// only, so a client that authenticates as it used that mechanism.
type saslUser struct {
	mechanism      polykafka.SASLMechanism
	user, password string
}

var saslUsers = []saslUser{
	{polykafka.SASLPlain, "plain-user", "plain-secret"},
	{polykafka.SASLScramSHA256, "scram256-user", "scram256-secret"},
	{polykafka.SASLScramSHA512, "scram512-user", "scram512-secret"},
}

const (
	adminUser     = "admin"
	adminPassword = "admin-secret"
)

// secureCluster starts a one-broker kfake cluster that accepts only TLS
// connections (with a certificate trusted by the returned pool) and only
// SASL-authenticated requests: the admin superuser (SCRAM-SHA-256) and
// saslUsers.
func secureCluster(t *testing.T) (*kfake.Cluster, *x509.CertPool) {
	t.Helper()
	serverTLS, roots := selfSigned(t)
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.TLS(serverTLS),
		kfake.Superuser(string(polykafka.SASLScramSHA256), adminUser, adminPassword),
	}
	for _, u := range saslUsers {
		opts = append(opts, kfake.User(string(u.mechanism), u.user, u.password))
	}
	cluster, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	return cluster, roots
}

// createTopic creates a 1-partition topic on the secure cluster with a
// native admin client, and waits until its metadata shows a leader.
func createTopic(t *testing.T, brokers []string, roots *x509.CertPool, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DialTLSConfig(&tls.Config{RootCAs: roots}),
		kgo.SASL(scram.Auth{User: adminUser, Pass: adminPassword}.AsSha256Mechanism()),
	)
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic)
	require.NoError(t, err, "create topic %s as the admin", topic)
	require.NoError(t, resp.Err, "create topic %s as the admin", topic)
	require.Eventually(t, func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		td, ok := md.Topics[topic]
		return ok && td.Err == nil && len(td.Partitions) == 1 && td.Partitions[0].Leader >= 0
	}, 30*time.Second, 50*time.Millisecond, "topic %s has a leader", topic)
}

// The portable Connection's TLS and SASL settings reach franz-go: on a
// cluster that accepts only TLS with a self-signed certificate and only
// SASL-authenticated clients, a producer and a consumer opened with
// franz.New(Connection{TLS, SASL}) round-trip a record, for each of the
// three mechanisms.
func TestConnectionTLSAndSASL(t *testing.T) {
	kc, roots := secureCluster(t)
	brokers := kc.ListenAddrs()

	for _, u := range saslUsers {
		t.Run(string(u.mechanism), func(t *testing.T) {
			topic := testcluster.Name(t, "t")
			createTopic(t, brokers, roots, topic)
			conn := polykafka.Connection{
				Brokers: brokers,
				TLS:     &tls.Config{RootCAs: roots},
				SASL:    &polykafka.SASL{Mechanism: u.mechanism, Username: u.user, Password: u.password},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			p, err := producer.New(ctx, franz.New(conn), nil)
			require.NoError(t, err)
			defer p.Close()
			sent := &polykafka.Record{Topic: topic, Key: []byte("k"), Value: []byte("over TLS as " + u.user)}
			require.NoError(t, p.Send(ctx, sent), "a producer with the Connection's TLS and %s credentials sends", u.mechanism)

			c, err := consumer.New(ctx, franz.New(conn), testcluster.Name(t, "g"), []string{topic},
				&consumer.Options{Initial: discovery.Earliest})
			require.NoError(t, err, "a consumer with the Connection's TLS and %s credentials joins", u.mechanism)
			defer c.Close()
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			var got []string
			err = c.Run(runCtx, func(_ context.Context, r polykafka.Record) error {
				got = append(got, string(r.Value))
				stop()
				return nil
			})
			require.NoError(t, err)
			require.NoError(t, ctx.Err(), "the record came back before the deadline")
			assert.Equal(t, []string{string(sent.Value)}, got, "the consumer reads what the producer wrote")
			assert.NoError(t, c.Close())
			assert.NoError(t, p.Close())
		})

	}
}

// answerPlainFailureLikeKafka makes the cluster answer a PLAIN
// authentication of a known PLAIN user with a wrong password the way Apache
// Kafka does, with a SaslAuthenticate response carrying
// SASL_AUTHENTICATION_FAILED (58). kfake itself closes the connection
// without answering; everything else is left to kfake.
func answerPlainFailureLikeKafka(kc *kfake.Cluster) {
	passwords := make(map[string]string)
	for _, u := range saslUsers {
		if u.mechanism == polykafka.SASLPlain {
			passwords[u.user] = u.password
		}
	}
	kc.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		r := req.(*kmsg.SASLAuthenticateRequest)
		// PLAIN's message is "authzid NUL user NUL password"; SCRAM's
		// messages contain no NUL.
		parts := bytes.Split(r.SASLAuthBytes, []byte{0})
		if len(parts) != 3 {
			return nil, nil, false
		}
		want, ok := passwords[string(parts[1])]
		if !ok || want == string(parts[2]) {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr("Authentication failed: Invalid username or password")
		return resp, nil, true
	})
}

// A wrong password fails consumer.New well before its deadline, with a code that says so where the
// broker says so. Apache Kafka answers SASL_AUTHENTICATION_FAILED, which
// is PermissionDenied: the PLAIN case checks that path end to end (the
// cluster answers as Kafka does). kfake answers a failed SCRAM exchange by
// closing the connection, which franz-go reports as a bare io.EOF, which
// the adapter does not classify: those cases expect Unknown, and the
// native io.EOF.
func TestConnectionWrongPassword(t *testing.T) {
	kc, roots := secureCluster(t)
	answerPlainFailureLikeKafka(kc)
	brokers := kc.ListenAddrs()

	for _, tt := range []struct {
		user     saslUser
		wantCode polykafka.ErrorCode
		wantEOF  bool   // the native error is io.EOF, else SASL_AUTHENTICATION_FAILED
		why      string // why this code
	}{
		{saslUsers[0], polykafka.PermissionDenied, false, "the broker answers SASL_AUTHENTICATION_FAILED, as Apache Kafka does"},
		{saslUsers[1], polykafka.Unknown, true, "kfake closes the connection without answering; a bare io.EOF is not classified"},
		{saslUsers[2], polykafka.Unknown, true, "kfake closes the connection without answering; a bare io.EOF is not classified"},
	} {
		t.Run(string(tt.user.mechanism), func(t *testing.T) {
			conn := polykafka.Connection{
				Brokers: brokers,
				TLS:     &tls.Config{RootCAs: roots},
				SASL:    &polykafka.SASL{Mechanism: tt.user.mechanism, Username: tt.user.user, Password: "wrong-" + tt.user.password},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := consumer.New(ctx, franz.New(conn), testcluster.Name(t, "g"), []string{testcluster.Name(t, "t")}, nil)
			require.Error(t, err, "a wrong %s password must not authenticate", tt.user.mechanism)
			assert.NoError(t, ctx.Err(), "a wrong password fails New before its deadline, not by it: %v", err)
			assert.Equal(t, tt.wantCode, polykafka.Code(err), "a wrong %s password is %s: %s (got: %v)", tt.user.mechanism, tt.wantCode, tt.why, err)
			if tt.wantEOF {
				assert.ErrorIs(t, err, io.EOF, "kfake closes the connection on a failed %s exchange", tt.user.mechanism)
			} else {
				assert.ErrorIs(t, err, kerr.SaslAuthenticationFailed, "the native error is reachable with errors.Is")
			}
		})
	}
}

// Native options given to franz.New reach only the clients they are for:
// producer options (kgo.ProducerOpt) only producers, consumer and group
// options (kgo.ConsumerOpt, kgo.GroupOpt) only consumers, the rest both.
// MaxProduceRequestsInflightPerBroker(3) is invalid on an idempotent kgo
// client, which a consumer's client is: given to a consumer, it would make
// consumer.New fail.
func TestNativeOptionsByClientKind(t *testing.T) {
	tc := testcluster.New(t)
	topic := tc.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const (
		inflight   = 3
		fetchMax   = int32(1 << 20)
		session    = 7 * time.Second
		minMetaAge = 150 * time.Millisecond
	)
	b := franz.New(polykafka.Connection{Brokers: tc.Brokers()},
		kgo.MaxProduceRequestsInflightPerBroker(inflight), // producer
		kgo.FetchMaxBytes(fetchMax),                       // consumer
		kgo.SessionTimeout(session),                       // group
		kgo.MetadataMinAge(minMetaAge),                    // both
	)

	c, err := consumer.New(ctx, b, testcluster.Name(t, "g"), []string{topic}, nil)
	require.NoError(t, err, "a producer-only native option must not reach the consumer's client")
	defer c.Close()
	// Several in-flight requests need a producer that is not idempotent.
	p, err := producer.New(ctx, b, &producer.Options{Idempotence: producer.IdempotenceOff})
	require.NoError(t, err, "a consumer-only native option must not reach the producer's client")
	defer p.Close()

	var ccl, pcl *kgo.Client
	require.True(t, c.As(&ccl))
	require.True(t, p.As(&pcl))
	defaults, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...))
	require.NoError(t, err)
	defer defaults.Close()

	for _, tt := range []struct {
		name               string
		opt                any
		want               any
		consumer, producer bool // the option is for this client
	}{
		{"MaxProduceRequestsInflightPerBroker", kgo.MaxProduceRequestsInflightPerBroker, inflight, false, true},
		{"FetchMaxBytes", kgo.FetchMaxBytes, fetchMax, true, false},
		{"SessionTimeout", kgo.SessionTimeout, session, true, false},
		{"MetadataMinAge", kgo.MetadataMinAge, minMetaAge, true, true},
	} {
		for _, cl := range []struct {
			kind  string
			cl    *kgo.Client
			given bool
		}{{"consumer", ccl, tt.consumer}, {"producer", pcl, tt.producer}} {
			want := tt.want
			if !cl.given {
				want = defaults.OptValue(tt.opt)
			}
			assert.Equal(t, want, cl.cl.OptValue(tt.opt), "native option %s on the %s's client (given to it: %v)", tt.name, cl.kind, cl.given)
		}
	}

	// Both clients work.
	r := &polykafka.Record{Topic: topic, Value: []byte("v")}
	require.NoError(t, p.Send(ctx, r))
	_, err = c.AwaitAssignment(ctx)
	require.NoError(t, err)
}
