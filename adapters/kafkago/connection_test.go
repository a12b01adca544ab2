package kafkago_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/adapters/kafkago"
)

// selfSigned returns a server TLS config for 127.0.0.1 and a client config
// trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// The Connection's TLS and SASL reach every connection the adapter opens:
// the producer's Writer, the consumer's group coordinator (dialed through
// the adapter's heartbeat-watching dialer, which does the TLS itself), its
// fetches, and metadata requests.
func TestConnectionTLSAndSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []polykafka.SASLMechanism{polykafka.SASLPlain, polykafka.SASLScramSHA256, polykafka.SASLScramSHA512} {
		t.Run(string(mech), func(t *testing.T) {
			t.Parallel()
			srv, cli := selfSigned(t)
			fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srv), kfake.EnableSASL(),
				kfake.Superuser(string(mech), "user", "secret"), kfake.SeedTopics(2, "t"))
			require.NoError(t, err)
			t.Cleanup(fake.Close)
			b := kafkago.New(polykafka.Connection{
				Brokers: fake.ListenAddrs(),
				TLS:     cli,
				SASL:    &polykafka.SASL{Mechanism: mech, Username: "user", Password: "secret"},
			}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			errc := make(chan error, 1)
			p, err := b.OpenProducer(ctx, driver.ProducerConfig{Acks: -1, Compression: "none", Logger: testLogger(t),
				Delivered: func(r *polykafka.Record, err error, done func(*polykafka.Record, error)) { done(r, err) }})
			require.NoError(t, err)
			p.Produce(ctx, &polykafka.Record{Topic: "t", Partition: polykafka.AnyPartition, Key: []byte("k"), Value: []byte("v")},
				func(_ *polykafka.Record, err error) { errc <- err })
			require.NoError(t, <-errc, "produce over TLS and SASL")
			require.NoError(t, p.Close(ctx))

			h := newHandler()
			c, err := b.OpenConsumer(ctx, driver.ConsumerConfig{Group: "g", Topics: []string{"t"}, Handler: h, Logger: testLogger(t)})
			require.NoError(t, err)
			h.c = c
			close(h.ready)
			counts, err := c.PartitionCounts(ctx, []string{"t"})
			require.NoError(t, err)
			assert.Equal(t, map[string]int32{"t": 2}, counts)
			rs := fetchUntil(t, c, 1, 15*time.Second)
			assert.Equal(t, "v", string(rs[0].Value), "consume over TLS and SASL")
			require.NoError(t, c.Close(ctx))
		})
	}
}
