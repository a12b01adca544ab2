package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBadFlagsNameTheFlag(t *testing.T) {
	for _, c := range []struct {
		cfg  config
		flag string
	}{
		{config{backend: "nope", group: "g"}, "-backend"},
		{config{migrate: "franz", group: "g"}, "-migrate"},
		{config{migrate: "franz,nope", group: "g"}, "-migrate"},
		{config{brokers: "localhost:1", group: "g"}, "-topic"},
		{config{group: ""}, "-group"},
	} {
		err := run(t.Context(), &bytes.Buffer{}, c.cfg)
		assert.ErrorContains(t, err, c.flag, "%+v", c.cfg)
	}
}

// The program runs with no flags on the embedded cluster.
func TestDemoEmbedded(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, config{backend: "kafkago", group: "demo"}))
	t.Log(out.String())
	assert.Contains(t, out.String(), "backend kafkago: sent 20, consumed 20, lost 0")
}

// -migrate a,b moves a live group with zero loss and prints the table.
func TestMigrateEmbedded(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, config{migrate: "sarama,franz", group: "demo"}))
	t.Log(out.String())
	assert.Contains(t, out.String(), "| sarama | franz |")
	assert.Contains(t, out.String(), "topic grown to 3 partitions")
	assert.Regexp(t, `\| sarama \| franz \| \d+ \| 0 \|`, out.String(), "0 records lost")
}
