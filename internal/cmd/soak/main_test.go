package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBadFlagsNameTheFlag(t *testing.T) {
	good := config{backend: "franz", duration: time.Second, rate: 1, partitions: 1, maxPartitions: 1, members: 1,
		cutEvery: 2 * time.Second, cutFor: time.Second, drain: time.Second, progress: time.Second}
	require.NoError(t, good.validate())
	for _, c := range []struct {
		edit func(*config)
		flag string
	}{
		{func(c *config) { c.backend = "nope" }, "-backend"},
		{func(c *config) { c.duration = 0 }, "-duration"},
		{func(c *config) { c.rate = 0 }, "-rate"},
		{func(c *config) { c.maxPartitions = 0 }, "-max-partitions"},
		{func(c *config) { c.members = 0 }, "-members"},
		{func(c *config) { c.cutFor = 3 * time.Second }, "-cut-for"},
		{func(c *config) { c.drain = 0 }, "-drain"},
	} {
		cfg := good
		c.edit(&cfg)
		_, err := run(t.Context(), cfg, &bytes.Buffer{}, &bytes.Buffer{})
		assert.ErrorContains(t, err, c.flag, "%+v", cfg)
	}
}

// A short soak on franz: the topic grows, members are restarted, the
// connections are cut, and every acknowledged record is consumed.
func TestSoakSmoke(t *testing.T) {
	var out, log bytes.Buffer
	rep, err := run(t.Context(), config{backend: "franz", duration: 12 * time.Second, rate: 100,
		partitions: 2, maxPartitions: 8, members: 2,
		grow: 4 * time.Second, churn: 5 * time.Second, cutEvery: 7 * time.Second, cutFor: time.Second,
		drain: 2 * time.Minute, progress: 5 * time.Second}, &out, &log)
	t.Log(log.String())
	t.Log(out.String())
	require.NoError(t, err)
	k := rep.counts
	assert.Positive(t, k.acked, "records were acknowledged")
	assert.Zero(t, k.lost, "no acknowledged record is lost")
	assert.Equal(t, k.acked, k.unique, "every acknowledged id was consumed")
	assert.Zero(t, k.noCallback+k.extraCallbacks, "every callback ran exactly once")
	assert.Greater(t, rep.partitionsEnd, rep.partitionsStart, "the topic grew")
	assert.Positive(t, rep.churns, "members were restarted")
	assert.Positive(t, rep.cuts, "connections were cut")
	assert.False(t, rep.failedRun())
	assert.Contains(t, out.String(), "| franz | 12s |")
}
