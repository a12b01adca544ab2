package offsetstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka/offsetstore"
	"github.com/polykafka/polykafka/offsetstore/storetest"
)

func uniqueTopic(t *testing.T, _ int32) string { return storetest.UniqueName(t) }

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) (offsetstore.Store, string) {
			return offsetstore.NewMemory(), storetest.UniqueName(t)
		},
		uniqueTopic,
	)
}

// TestMemoryConformanceShared runs the suite with one store for every case,
// each under a group of its own: the groups of one store must not see each
// other's positions.
func TestMemoryConformanceShared(t *testing.T) {
	shared := offsetstore.NewMemory()
	storetest.Run(t,
		func(t *testing.T) (offsetstore.Store, string) {
			return shared, storetest.UniqueName(t)
		},
		uniqueTopic,
	)
}

func TestMetadata(t *testing.T) {
	for _, b := range []int32{1, 4, 1000, 1<<31 - 1} {
		meta := offsetstore.EncodeMetadata(b)
		assert.NotEmpty(t, meta, "EncodeMetadata(%d)", b)
		assert.Equal(t, b, offsetstore.DecodeMetadata(meta), "DecodeMetadata(EncodeMetadata(%d)) = DecodeMetadata(%q)", b, meta)
	}
	assert.Equal(t, "polykafka:v1:baseline=4", offsetstore.EncodeMetadata(4), "the metadata format is shared with other clients and must not change")
	assert.Empty(t, offsetstore.EncodeMetadata(0), "baseline 0 (unknown) must encode as no metadata")
	assert.Empty(t, offsetstore.EncodeMetadata(-1), "a negative baseline must encode as no metadata")

	for _, meta := range []string{
		"",
		"member-1",
		"polykafka:v1:baseline=",
		"polykafka:v1:baseline=x",
		"polykafka:v1:baseline=-3",
		"polykafka:v1:baseline=4x",
		"polykafka:v1:baseline=99999999999",
		"polykafka:v2:baseline=4",
		" polykafka:v1:baseline=4",
	} {
		assert.Zero(t, offsetstore.DecodeMetadata(meta), "DecodeMetadata(%q) must be 0 for metadata not written by polykafka", meta)
	}
}
