package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePartitions(t *testing.T) {
	o, err := parsePartitions("", "t")
	require.NoError(t, err)
	assert.False(t, o.All)
	assert.Empty(t, o.Partitions, "empty means every partition without a position")
	o, err = parsePartitions("all", "t")
	require.NoError(t, err)
	assert.True(t, o.All)
	o, err = parsePartitions("0, 3", "t")
	require.NoError(t, err)
	require.Len(t, o.Partitions, 2)
	assert.Equal(t, int32(3), o.Partitions[1].Partition)
	for _, bad := range []string{"x", "-1", "1,,2"} {
		_, err := parsePartitions(bad, "t")
		assert.ErrorContains(t, err, "-partitions", bad)
	}
}

// TestRunEmbedded runs the demo on an embedded cluster: a dry run plans the
// two partitions without a position, and an apply of every partition
// commits four.
func TestRunEmbedded(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, config{backend: "franz", to: "earliest", dryRun: true}))
	t.Log(out.String())
	assert.Contains(t, out.String(), "to earliest: 2 partitions")
	assert.Contains(t, out.String(), "dry run: nothing committed")
	assert.Equal(t, 2, strings.Count(out.String(), "baseline=2 (group)"), "partitions 2 and 3 get the group's baseline")

	out.Reset()
	require.NoError(t, run(t.Context(), &out, config{backend: "franz", to: "latest", partitions: "all"}))
	assert.Contains(t, out.String(), "applied: 4 positions committed")

	out.Reset()
	require.NoError(t, run(t.Context(), &out, config{backend: "confluent", to: "earliest", dryRun: true}), "confluent has an admin too")
	assert.Contains(t, out.String(), "to earliest: 2 partitions")

	assert.ErrorContains(t, run(t.Context(), &out, config{backend: "franz", to: "soon"}), "-to")
	assert.ErrorContains(t, run(t.Context(), &out, config{backend: "nope", to: "earliest"}), "-backend")
	assert.ErrorContains(t, run(t.Context(), &out, config{brokers: "localhost:1", backend: "franz", to: "earliest"}), "-group and -topic")
}
