package driver

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUserDataRoundTrip(t *testing.T) {
	counts := map[string]int32{"orders": 4, "a.b_c-d": 2, "payments": 12}
	b := EncodeUserData(counts)
	assert.Equal(t, "polykafka:userdata:v1:a.b_c-d=2;orders=4;payments=12", string(b), "the encoding is sorted by topic, so equal views give equal join metadata")
	assert.Equal(t, counts, DecodeUserData(b), "decoding returns what was encoded")
	assert.Nil(t, EncodeUserData(nil), "no counts encode to no user data")
	for _, foreign := range []string{"", "sticky-data", "polykafka:userdata:v1:", "polykafka:userdata:v1:t", "polykafka:userdata:v1:t=x",
		"polykafka:userdata:v1:t=-1", "polykafka:userdata:v1:a=b=2",
		"polykafka:v1:baseline=3", "polykafka:v1:orders=4"} {
		assert.Nil(t, DecodeUserData([]byte(foreign)), "user data %q not written by EncodeUserData decodes to nil (commit metadata included)", foreign)
	}
}
