package driver

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUserDataRoundTrip(t *testing.T) {
	counts := map[string]int32{"orders": 4, "a=b": 2, "payments": 12}
	b := EncodeUserData(counts)
	assert.Equal(t, "polykafka:v1:a=b=2;orders=4;payments=12", string(b), "the encoding is sorted by topic, so equal views give equal join metadata")
	assert.Equal(t, counts, DecodeUserData(b), "decoding returns what was encoded, even for a topic name containing '='")
	assert.Nil(t, EncodeUserData(nil), "no counts encode to no user data")
	for _, foreign := range []string{"", "sticky-data", "polykafka:v1:", "polykafka:v1:t", "polykafka:v1:t=x", "polykafka:v1:t=-1"} {
		assert.Nil(t, DecodeUserData([]byte(foreign)), "user data %q not written by EncodeUserData decodes to nil", foreign)
	}
}
