//go:build cgo

package confluent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/confluent"
	"github.com/polykafka/polykafka/producer"
)

// A TLS setting librdkafka cannot be given fails OpenProducer (and
// OpenConsumer, which builds the same configuration) with Unimplemented,
// naming the field, instead of being dropped; a native ssl.ca.* stands in
// for TLS.RootCAs. No broker is needed: the configuration fails first.
func TestConnectionTLSUnimplemented(t *testing.T) {
	brokers := []string{"127.0.0.1:1"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		field string
		tls   *tls.Config
	}{
		{"Connection.TLS.RootCAs", &tls.Config{RootCAs: x509.NewCertPool()}},
		{"Connection.TLS.ServerName", &tls.Config{ServerName: "kafka"}},
		{"Connection.TLS.VerifyPeerCertificate", &tls.Config{
			VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error { return nil }}},
		{"Connection.TLS.GetClientCertificate", &tls.Config{
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }}},
	} {
		_, err := producer.New(ctx, confluent.New(polykafka.Connection{Brokers: brokers, TLS: tt.tls}, nil), nil)
		if assert.Error(t, err, tt.field) {
			assert.Equal(t, polykafka.Unimplemented, polykafka.Code(err), "%s: %v", tt.field, err)
			assert.Contains(t, err.Error(), tt.field, "the error names the field")
		}
	}
	p, err := producer.New(ctx, confluent.New(polykafka.Connection{Brokers: brokers, TLS: &tls.Config{RootCAs: x509.NewCertPool()}},
		kafka.ConfigMap{"ssl.ca.location": "probe"}), &producer.Options{CloseTimeout: time.Second})
	require.NoError(t, err, "a native ssl.ca.location stands in for TLS.RootCAs")
	_ = p.Close()
}
