package admin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

func TestParseTarget(t *testing.T) {
	at := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want Target
	}{
		{"earliest", Earliest()},
		{"latest", Latest()},
		{"42", Offset(42)},
		{"0", Offset(0)},
		{"2026-12-01T04:00:00Z", At(at)},
	} {
		got, err := ParseTarget(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want.String(), got.String(), tc.in)
	}
	for _, bad := range []string{"", "-1", "yesterday", "2026-12-01"} {
		_, err := ParseTarget(bad)
		assert.Error(t, err, "%q is not a target", bad)
	}
}

func TestResolveClamps(t *testing.T) {
	for _, tc := range []struct {
		target          Target
		start, end, at  int64
		want            int64
		reasonSubstring string
	}{
		{Earliest(), 5, 10, 0, 5, "earliest"},
		{Latest(), 5, 10, 0, 10, "latest"},
		{Offset(7), 5, 10, 0, 7, "offset 7"},
		{Offset(2), 5, 10, 0, 5, "clamped to the log start"},
		{Offset(20), 5, 10, 0, 10, "clamped to the log end"},
		{At(time.UnixMilli(1)), 5, 10, 8, 8, "time"},
		{At(time.UnixMilli(1)), 5, 10, -1, 10, "no record at or after it"},
		{At(time.UnixMilli(1)), 5, 10, 2, 5, "clamped to the log start"},
	} {
		got, reason := tc.target.resolve(tc.start, tc.end, tc.at)
		assert.Equal(t, tc.want, got, "%s in [%d, %d] (listed %d)", tc.target, tc.start, tc.end, tc.at)
		assert.Contains(t, reason, tc.reasonSubstring)
	}
}

// bare is a backend without driver.Administrator.
type bare struct{}

func (bare) Name() string { return "bare" }
func (bare) OpenConsumer(context.Context, driver.ConsumerConfig) (driver.Consumer, error) {
	return nil, nil
}
func (bare) OpenProducer(context.Context, driver.ProducerConfig) (driver.Producer, error) {
	return nil, nil
}

func TestPlanValidates(t *testing.T) {
	ctx := context.Background()
	tp := polykafka.TopicPartition{Topic: "orders", Partition: 0}
	for _, tc := range []struct {
		name   string
		b      driver.Backend
		group  string
		topics []string
		target Target
		opts   *PlanOptions
		code   polykafka.ErrorCode
		msg    string
	}{
		{"nil backend", nil, "g", []string{"orders"}, Earliest(), nil, polykafka.InvalidArgument, "backend"},
		{"empty group", bare{}, "", []string{"orders"}, Earliest(), nil, polykafka.InvalidArgument, "group"},
		{"no topics", bare{}, "g", nil, Earliest(), nil, polykafka.InvalidArgument, "topics"},
		{"zero target", bare{}, "g", []string{"orders"}, Target{}, nil, polykafka.InvalidArgument, "zero Target"},
		{"negative offset", bare{}, "g", []string{"orders"}, Offset(-3), nil, polykafka.InvalidArgument, "negative"},
		{"All and Partitions", bare{}, "g", []string{"orders"}, Earliest(), &PlanOptions{All: true, Partitions: []polykafka.TopicPartition{tp}}, polykafka.InvalidArgument, "All and Partitions"},
		{"foreign topic", bare{}, "g", []string{"orders"}, Earliest(), &PlanOptions{Partitions: []polykafka.TopicPartition{{Topic: "other"}}}, polykafka.InvalidArgument, "Partitions[0]"},
		{"no Administrator", bare{}, "g", []string{"orders"}, Earliest(), nil, polykafka.Unimplemented, `"bare"`},
	} {
		_, err := Plan(ctx, tc.b, tc.group, tc.topics, tc.target, tc.opts)
		require.Error(t, err, tc.name)
		assert.Equal(t, tc.code, polykafka.Code(err), "%s: %v", tc.name, err)
		assert.True(t, strings.Contains(err.Error(), tc.msg), "%s: %q should mention %q", tc.name, err, tc.msg)
	}
}

func TestApplyEmptyPlan(t *testing.T) {
	p := &ResetPlan{Group: "g", Target: Earliest(), b: bare{}}
	assert.NoError(t, p.Apply(context.Background()), "a plan without rows commits nothing")
	assert.Equal(t, "reset of group \"g\" to earliest: 0 partitions\n", p.String())
	var zero ResetPlan
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(zero.Apply(context.Background())))
}
