package offsetstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka/offsetstore"
)

// TestDecodeMetadataStrict checks that commit metadata and JoinGroup user
// data, which share the "polykafka:v1:" prefix, cannot be mistaken for one
// another on the commit side: only "polykafka:v1:baseline=<digits>" is a
// baseline.
func TestDecodeMetadataStrict(t *testing.T) {
	for meta, want := range map[string]int32{
		"polykafka:v1:baseline=3":          3, // written in the wild: must keep decoding
		"polykafka:v1:baseline=0":          0,
		"polykafka:v1:orders=4":            0, // user data of one topic
		"polykafka:v1:a=2;orders=4":        0, // user data of several topics
		"polykafka:v1:baseline=3;orders=4": 0, // user data with a topic named "baseline"
		"polykafka:v1:orders=4;baseline=3": 0,
		"polykafka:v1:baseline=+3":         0,
		"polykafka:v1:baseline=3=4":        0,
		"polykafka:v1:baseline= 3":         0,
		"polykafka:v1:baseline=3 ":         0,
	} {
		assert.Equal(t, want, offsetstore.DecodeMetadata(meta), "DecodeMetadata(%q)", meta)
	}
}
