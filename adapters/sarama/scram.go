package polysarama

// sarama implements SCRAM's framing but not its client side; this is the
// client side of RFC 5802 (SCRAM-SHA-256 and SCRAM-SHA-512, RFC 7677), so
// that the adapter needs no dependency beyond sarama for
// polykafka.Connection.SASL.

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
)

func sha256Hash() hash.Hash { return sha256.New() }
func sha512Hash() hash.Hash { return sha512.New() }

type scramClient struct {
	h        func() hash.Hash
	user     string
	password string
	authzID  string
	step     int
	nonce    string
	first    string // client-first-message-bare
	serverSg []byte // expected server signature
}

var _ sarama.SCRAMClient = (*scramClient)(nil)

func newSCRAM(h func() hash.Hash) *scramClient { return &scramClient{h: h} }

// Begin implements sarama.SCRAMClient.
func (c *scramClient) Begin(user, password, authzID string) error {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	*c = scramClient{h: c.h, user: user, password: password, authzID: authzID, nonce: base64.RawStdEncoding.EncodeToString(b)}
	return nil
}

func (c *scramClient) gs2Header() string {
	if c.authzID == "" {
		return "n,,"
	}
	return "n,a=" + escapeSCRAM(c.authzID) + ","
}

func escapeSCRAM(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// Step implements sarama.SCRAMClient.
func (c *scramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		c.first = "n=" + escapeSCRAM(c.user) + ",r=" + c.nonce
		return c.gs2Header() + c.first, nil
	case 2:
		return c.final(challenge)
	case 3:
		attrs := parseSCRAM(challenge)
		if e, ok := attrs["e"]; ok {
			return "", fmt.Errorf("scram: server error %q", e)
		}
		v, err := base64.StdEncoding.DecodeString(attrs["v"])
		if err != nil || !hmac.Equal(v, c.serverSg) {
			return "", errors.New("scram: invalid server signature")
		}
		return "", nil
	}
	return "", errors.New("scram: unexpected step")
}

func (c *scramClient) final(serverFirst string) (string, error) {
	attrs := parseSCRAM(serverFirst)
	nonce, salt64, iters := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", errors.New("scram: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("scram: bad salt: %w", err)
	}
	iter, err := strconv.Atoi(iters)
	if err != nil || iter <= 0 {
		return "", fmt.Errorf("scram: bad iteration count %q", iters)
	}
	salted, err := pbkdf2.Key(c.h, c.password, salt, iter, c.h().Size())
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(c.h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	h := c.h()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2Header())) + ",r=" + nonce
	auth := c.first + "," + serverFirst + "," + withoutProof
	sig := mac(storedKey, auth)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.serverSg = mac(mac(salted, "Server Key"), auth)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func parseSCRAM(s string) map[string]string {
	out := make(map[string]string)
	for _, kv := range strings.Split(s, ",") {
		if len(kv) >= 2 && kv[1] == '=' {
			out[kv[:1]] = kv[2:]
		}
	}
	return out
}

// Done implements sarama.SCRAMClient.
func (c *scramClient) Done() bool { return c.step >= 3 }
