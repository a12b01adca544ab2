package polykafka_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
)

func TestConnectionRedactsPassword(t *testing.T) {
	const pw = "hunter2-secret"
	sasl := &polykafka.SASL{Mechanism: polykafka.SASLScramSHA512, Username: "alice", Password: pw}
	c := polykafka.Connection{Brokers: []string{"k:9092"}, ClientID: "app", TLS: &tls.Config{}, SASL: sasl}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{c, &c, sasl, *sasl, []polykafka.Connection{c}} {
			out := fmt.Sprintf(f, v)
			assert.NotContains(t, out, pw, "a password never appears in %s of a %T: %s", f, v, out)
			assert.Contains(t, out, "alice", "%s of a %T still names the user: %s", f, v, out)
		}
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("connecting", "conn", c, "sasl", sasl)
	}
	assert.NotContains(t, buf.String(), pw, "a password never appears in a log: %s", buf.String())
	assert.Contains(t, buf.String(), "alice")

	bad := polykafka.Connection{Brokers: []string{"k:9092"}, SASL: &polykafka.SASL{Mechanism: "GSSAPI", Username: "alice", Password: pw}}
	err := bad.Validate()
	if assert.Error(t, err) {
		assert.NotContains(t, err.Error(), pw, "a password never appears in an error")
		assert.NotContains(t, fmt.Sprintf("%+v", err), pw)
	}
}

func TestConnectionRootCAsPEM(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	brokers := []string{"k:9093"}

	c := polykafka.Connection{Brokers: brokers, RootCAsPEM: caPEM}
	require.NoError(t, c.Validate())
	cfg, err := c.TLSConfig()
	require.NoError(t, err)
	require.NotNil(t, cfg, "RootCAsPEM alone enables TLS")
	assert.NotNil(t, cfg.RootCAs, "the pool holds RootCAsPEM's certificate")
	assert.Contains(t, c.String(), "TLS:true")

	base := &tls.Config{ServerName: "kafka"}
	c.TLS = base
	cfg, err = c.TLSConfig()
	require.NoError(t, err)
	assert.Equal(t, "kafka", cfg.ServerName, "TLS's settings are kept")
	assert.Nil(t, base.RootCAs, "TLSConfig clones TLS, never changes it")

	plain, err := polykafka.Connection{Brokers: brokers}.TLSConfig()
	assert.NoError(t, err)
	assert.Nil(t, plain, "neither TLS nor RootCAsPEM: plaintext")

	for _, tt := range []struct {
		name string
		conn polykafka.Connection
	}{
		{"not PEM", polykafka.Connection{Brokers: brokers, RootCAsPEM: []byte("not a certificate")}},
		{"a key, not a certificate", polykafka.Connection{Brokers: brokers,
			RootCAsPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}},
		{"both RootCAsPEM and TLS.RootCAs", polykafka.Connection{Brokers: brokers, RootCAsPEM: caPEM,
			TLS: &tls.Config{RootCAs: x509.NewCertPool()}}},
	} {
		err := tt.conn.Validate()
		if assert.Error(t, err, tt.name) {
			assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), tt.name)
			assert.Contains(t, err.Error(), "Connection.RootCAsPEM", "%s: the error names the field", tt.name)
		}
	}
}
