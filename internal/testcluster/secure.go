package testcluster

// A cluster that takes only TLS connections and SASL-authenticated clients,
// and answers a failed authentication the way Apache Kafka does.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASLUser is a user of a secure cluster, who exists for one mechanism.
type SASLUser struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string
	// User and Password are the credentials.
	User, Password string
}

// Secure is what a client needs to reach a cluster from NewSecure.
type Secure struct {
	// CAPEM is the PEM certificate of the CA, generated for the test, that
	// signed the broker's certificate (for 127.0.0.1, ::1 and localhost).
	CAPEM []byte
	// Users has one user per SASL mechanism.
	Users []SASLUser
}

// The secure cluster's superuser, with which the Cluster's own clients
// (topics, test data) authenticate.
const (
	secureAdmin         = "admin"
	secureAdminPassword = "admin-secret-Zq81"
	scramIterations     = 4096 // kfake's server-first always says 4096
)

// NewSecure returns an in-process one-broker cluster (whatever
// KAFKA_BROKERS says: a test cannot add users or a CA to a real cluster)
// that accepts only TLS connections, with a certificate signed by a CA
// made for the test, and only SASL-authenticated requests: one user per
// mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), in Secure.Users. A wrong
// password gets the answer Apache Kafka gives, a SaslAuthenticate response
// with SASL_AUTHENTICATION_FAILED (kfake itself closes the connection
// without answering). The Cluster's methods (Topic, Produce, ...) work as
// on any cluster. It is closed when tb ends.
func NewSecure(tb testing.TB) (*Cluster, Secure) {
	tb.Helper()
	caPEM, serverTLS, roots, err := newCA()
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	sec := Secure{CAPEM: caPEM, Users: []SASLUser{
		{"PLAIN", "plain-user", "plain-pw-Kd72x"},
		{"SCRAM-SHA-256", "scram256-user", "scram256-pw-Qm40v"},
		{"SCRAM-SHA-512", "scram512-user", "scram512-pw-Tr93p"},
	}}
	auth := kgo.SASL(scram.Auth{User: secureAdmin, Pass: secureAdminPassword}.AsSha256Mechanism())
	c, err := startWith(nil, "250", []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: roots}), auth},
		kfake.NumBrokers(1), kfake.EnableSASL(), kfake.TLS(serverTLS),
		kfake.Superuser("SCRAM-SHA-256", secureAdmin, secureAdminPassword),
		kfake.Superuser("PLAIN", sec.Users[0].User, sec.Users[0].Password))
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	tb.Cleanup(c.Close)
	// The SCRAM users get a salt the failure answer knows (kfake.Superuser
	// would salt at random): the answer has to check a SCRAM proof.
	salts := make(map[string]scramCred)
	var ups []kadm.UpsertSCRAM
	for _, u := range sec.Users[1:] {
		cred := newScramCred(u.Mechanism, u.Password)
		salts[u.User] = cred
		mech := kadm.ScramSha256
		if u.Mechanism == "SCRAM-SHA-512" {
			mech = kadm.ScramSha512
		}
		ups = append(ups, kadm.UpsertSCRAM{User: u.User, Mechanism: mech, Iterations: scramIterations,
			Salt: cred.salt, SaltedPassword: cred.salted})
	}
	ctx, cancel := ctxFor(tb)
	defer cancel()
	res, err := c.adm.AlterUserSCRAMs(ctx, nil, ups)
	if err == nil {
		for _, r := range res {
			if r.Err != nil {
				err = fmt.Errorf("%s: %w", r.User, r.Err)
			}
		}
	}
	if err != nil {
		tb.Fatalf("testcluster: create the SCRAM users: %v", err)
	}
	answerAuthFailureLikeKafka(c.fake, map[string]string{sec.Users[0].User: sec.Users[0].Password}, salts)
	return c, sec
}

// newCA returns the PEM certificate of a new CA, a server configuration
// with a certificate it signed for the loopback addresses, and a pool
// trusting the CA.
func newCA() (caPEM []byte, server *tls.Config, roots *x509.CertPool, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "polykafka test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	server = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}},
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), server, roots, nil
}

// scramCred is a SCRAM credential as a broker stores it.
type scramCred struct {
	h      func() hash.Hash
	salt   []byte
	salted []byte // SaltedPassword: PBKDF2(password, salt, iterations)
}

func newScramCred(mechanism, password string) scramCred {
	h, size := sha256.New, sha256.Size
	if mechanism == "SCRAM-SHA-512" {
		h, size = sha512.New, sha512.Size
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, _ := pbkdf2.Key(h, password, salt, scramIterations, size) // cannot fail: valid salt and size
	return scramCred{h: h, salt: salt, salted: salted}
}

// answerAuthFailureLikeKafka makes kc answer an authentication with a
// wrong password as Apache Kafka does (SaslServerAuthenticator): a
// SaslAuthenticate response with SASL_AUTHENTICATION_FAILED (58), where
// kfake closes the connection without an answer, which each client
// reports differently (io.EOF, "broken pipe", librdkafka's transport
// error). A right password, an unknown user, and everything else are left
// to kfake. plain holds the PLAIN users' passwords, scram the SCRAM users'
// credentials.
func answerAuthFailureLikeKafka(kc *kfake.Cluster, plain map[string]string, scram map[string]scramCred) {
	type first struct {
		bare string // client-first-message-bare
		user string
	}
	var mu sync.Mutex
	firsts := make(map[string]first) // client nonce -> its client-first message
	fail := func(r *kmsg.SASLAuthenticateRequest, msg string) (kmsg.Response, error, bool) {
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(msg)
		return resp, nil, true
	}
	kc.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		r := req.(*kmsg.SASLAuthenticateRequest)
		msg := string(r.SASLAuthBytes)
		// PLAIN: "authzid NUL user NUL password". SCRAM messages have no
		// NUL.
		if parts := strings.Split(msg, "\x00"); len(parts) == 3 {
			if want, ok := plain[parts[1]]; ok && want != parts[2] {
				return fail(r, "Authentication failed: Invalid username or password")
			}
			return nil, nil, false
		}
		attrs := scramAttrs(msg)
		switch {
		case strings.HasPrefix(msg, "n,") || strings.HasPrefix(msg, "y,"):
			// client-first: gs2 header "n,[a=authzid]," then the bare message.
			if i := strings.Index(msg[2:], ","); i >= 0 {
				bare := msg[2+i+1:]
				a := scramAttrs(bare)
				mu.Lock()
				firsts[a["r"]] = first{bare: bare, user: strings.NewReplacer("=3D", "=", "=2C", ",").Replace(a["n"])}
				mu.Unlock()
			}
		case attrs["c"] != "" && attrs["p"] != "":
			// client-final: "c=...,r=nonce,p=proof".
			mu.Lock()
			var f first
			found := false
			for n, v := range firsts {
				if strings.HasPrefix(attrs["r"], n) {
					f, found = v, true
					delete(firsts, n)
					break
				}
			}
			mu.Unlock()
			cred, ok := scram[f.user]
			if !found || !ok {
				return nil, nil, false
			}
			serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", attrs["r"], base64.StdEncoding.EncodeToString(cred.salt), scramIterations)
			withoutProof := msg[:strings.LastIndex(msg, ",p=")]
			if !scramProofValid(cred, f.bare+","+serverFirst+","+withoutProof, attrs["p"]) {
				return fail(r, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM")
			}
		}
		return nil, nil, false
	})
}

// scramAttrs parses "k=v,k=v" (a value may contain '=').
func scramAttrs(msg string) map[string]string {
	out := make(map[string]string)
	for _, kv := range strings.Split(msg, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && len(k) == 1 {
			out[k] = v
		}
	}
	return out
}

// scramProofValid checks a client proof as a SCRAM server does (RFC 5802):
// H(proof XOR HMAC(StoredKey, AuthMessage)) == StoredKey.
func scramProofValid(cred scramCred, authMessage, proof64 string) bool {
	proof, err := base64.StdEncoding.DecodeString(proof64)
	if err != nil {
		return false
	}
	mac := hmac.New(cred.h, cred.salted)
	mac.Write([]byte("Client Key"))
	clientKey := mac.Sum(nil)
	h := cred.h()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	mac = hmac.New(cred.h, storedKey)
	mac.Write([]byte(authMessage))
	sig := mac.Sum(nil)
	if len(proof) != len(sig) {
		return false
	}
	for i := range sig {
		proof[i] ^= sig[i]
	}
	h = cred.h()
	h.Write(proof)
	return bytes.Equal(h.Sum(nil), storedKey)
}
