// Package storetest is the conformance suite for implementations of
// [offsetstore.Store], in the manner of testing/slogtest: one function,
// [Run], checks the rules every Store must follow, one named subtest per
// rule, and a failure message states the rule that was broken.
//
// polykafka runs it against the stores it ships. A third-party Store (one
// backed by a database, say) runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		db := openTestDB(t)
//		storetest.Run(t,
//			func(t *testing.T) (offsetstore.Store, string) {
//				return mystore.New(db), storetest.UniqueName(t)
//			},
//			func(t *testing.T, partitions int32) string {
//				return storetest.UniqueName(t)
//			},
//		)
//	}
//
// newStore returns a fresh store and the group the suite must use with it:
// a store bound to one group (like [offsetstore.Kafka]) returns that group;
// a store that accepts any group should return a name no other test uses,
// such as [UniqueName]. newTopic returns the name of a topic with the given
// number of partitions that no other test uses; a store that checks topics
// against a cluster must create it there, while any other store can return
// [UniqueName]. The suite only writes positions for partitions below the
// count it asked newTopic for.
package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/offsetstore"
)

// Run checks that the stores made by newStore follow the rules of
// [offsetstore.Store]. Each rule runs as a subtest with a store of its own
// from newStore and topics of its own from newTopic; see the package
// documentation for what the two functions must return.
func Run(t *testing.T,
	newStore func(t *testing.T) (offsetstore.Store, string),
	newTopic func(t *testing.T, partitions int32) string,
) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store, group := newStore(t)
			require.NotNil(t, store, "newStore returned a nil Store")
			s := &suite{
				store:    store,
				group:    group,
				newTopic: newTopic,
				why:      c.explanation,
			}
			c.run(t, s)
		})
	}
}

// UniqueName returns a name for a group or topic that no other test uses:
// the test's name and the current time, with every character outside
// [a-zA-Z0-9._-] replaced by '-', short enough for a Kafka topic name.
func UniqueName(tb testing.TB) string {
	tb.Helper()
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, tb.Name())
	const maxPrefix = 200 // Kafka topic names are at most 249 characters
	if len(name) > maxPrefix {
		name = name[len(name)-maxPrefix:]
	}
	return fmt.Sprintf("storetest-%s-%d", name, uniqueCounter.next())
}

// uniqueCounter makes UniqueName unique even when the clock does not move
// between two calls.
var uniqueCounter counter

type counter struct {
	mu   sync.Mutex
	last int64
}

func (c *counter) next() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := time.Now().UnixNano()
	if n <= c.last {
		n = c.last + 1
	}
	c.last = n
	return n
}

// suite is what a case works with.
type suite struct {
	store    offsetstore.Store
	group    string
	newTopic func(t *testing.T, partitions int32) string
	// why is the explanation of the running case, included in every
	// failure message.
	why string
}

func (s *suite) topic(t *testing.T, partitions int32) string {
	t.Helper()
	topic := s.newTopic(t, partitions)
	require.NotEmpty(t, topic, "newTopic returned an empty topic name")
	return topic
}

func (s *suite) save(t *testing.T, positions map[polykafka.TopicPartition]offsetstore.Position) {
	t.Helper()
	err := s.store.Save(t.Context(), s.group, positions)
	require.NoError(t, err, "Save(%q, %v): %s", s.group, positions, s.why)
}

func (s *suite) load(t *testing.T, topic string) map[int32]offsetstore.Position {
	t.Helper()
	got, err := s.store.Load(t.Context(), s.group, topic)
	require.NoError(t, err, "Load(%q, %q): %s", s.group, topic, s.why)
	return got
}

// wantLoad loads topic and checks that it yields exactly want.
func (s *suite) wantLoad(t *testing.T, topic string, want map[int32]offsetstore.Position) {
	t.Helper()
	got := s.load(t, topic)
	if len(want) == 0 {
		assert.Empty(t, got, "Load(%q, %q): %s", s.group, topic, s.why)
		return
	}
	assert.Equal(t, want, got, "Load(%q, %q): %s", s.group, topic, s.why)
}

// wantInvalid checks that saving positions for group fails with
// InvalidArgument.
func (s *suite) wantInvalid(t *testing.T, group string, positions map[polykafka.TopicPartition]offsetstore.Position) {
	t.Helper()
	err := s.store.Save(t.Context(), group, positions)
	require.Error(t, err, "Save(%q, %v): %s", group, positions, s.why)
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err),
		"Save(%q, %v) returned %v: %s", group, positions, err, s.why)
}

func pos(offset int64, baseline int32) offsetstore.Position {
	return offsetstore.Position{Offset: offset, Baseline: baseline}
}

func tp(topic string, partition int32) polykafka.TopicPartition {
	return polykafka.TopicPartition{Topic: topic, Partition: partition}
}

type testCase struct {
	name        string
	explanation string
	run         func(t *testing.T, s *suite)
}

var cases = []testCase{
	{
		name:        "empty-load",
		explanation: "a Store must return an empty map for a topic the group never read",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 2)
			s.wantLoad(t, topic, nil)
		},
	},
	{
		name:        "round-trip",
		explanation: "a Store must return from Load the offset and baseline of every partition it saved",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 3)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{
				tp(topic, 0): pos(5, 3),
				tp(topic, 1): pos(1<<40, 3),
				tp(topic, 2): pos(0, 3),
			})
			s.wantLoad(t, topic, map[int32]offsetstore.Position{
				0: pos(5, 3),
				1: pos(1<<40, 3),
				2: pos(0, 3),
			})
		},
	},
	{
		name:        "save-replaces",
		explanation: "a Save must replace the earlier positions of the partitions it names and leave the other partitions alone",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 3)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{
				tp(topic, 0): pos(10, 2),
				tp(topic, 1): pos(20, 2),
			})
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{
				tp(topic, 0): pos(30, 3),
				tp(topic, 2): pos(7, 3),
			})
			s.wantLoad(t, topic, map[int32]offsetstore.Position{
				0: pos(30, 3),
				1: pos(20, 2),
				2: pos(7, 3),
			})
		},
	},
	{
		name:        "save-backwards",
		explanation: "a Save must replace an earlier position even with a smaller offset",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(100, 1)})
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(40, 1)})
			s.wantLoad(t, topic, map[int32]offsetstore.Position{0: pos(40, 1)})
		},
	},
	{
		name:        "load-one-topic",
		explanation: "a Load must return only the positions of the topic it names",
		run: func(t *testing.T, s *suite) {
			a, b := s.topic(t, 2), s.topic(t, 2)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{
				tp(a, 0): pos(1, 2),
				tp(a, 1): pos(2, 2),
				tp(b, 1): pos(3, 2),
			})
			s.wantLoad(t, a, map[int32]offsetstore.Position{0: pos(1, 2), 1: pos(2, 2)})
			s.wantLoad(t, b, map[int32]offsetstore.Position{1: pos(3, 2)})
		},
	},
	{
		name:        "baseline-zero",
		explanation: "a Store must return a baseline of 0 (unknown) as 0",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 2)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{
				tp(topic, 0): pos(7, 0),
				tp(topic, 1): pos(8, 2),
			})
			s.wantLoad(t, topic, map[int32]offsetstore.Position{0: pos(7, 0), 1: pos(8, 2)})
		},
	},
	{
		name:        "invalid-empty-group",
		explanation: "a Save with the empty group must fail with InvalidArgument",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.wantInvalid(t, "", map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(1, 1)})
		},
	},
	{
		name:        "invalid-empty-topic",
		explanation: "a Save of a position with the empty topic must fail with InvalidArgument",
		run: func(t *testing.T, s *suite) {
			s.wantInvalid(t, s.group, map[polykafka.TopicPartition]offsetstore.Position{tp("", 0): pos(1, 1)})
		},
	},
	{
		name:        "invalid-negative-partition",
		explanation: "a Save of a position with a negative partition must fail with InvalidArgument",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.wantInvalid(t, s.group, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, -1): pos(1, 1)})
		},
	},
	{
		name:        "invalid-negative-offset",
		explanation: "a Save of a position with a negative offset must fail with InvalidArgument",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.wantInvalid(t, s.group, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(-1, 1)})
			// The special offsets are not positions either.
			s.wantInvalid(t, s.group, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(polykafka.OffsetEarliest, 1)})
		},
	},
	{
		name:        "invalid-negative-baseline",
		explanation: "a Save of a position with a negative baseline must fail with InvalidArgument",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.wantInvalid(t, s.group, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(1, -1)})
		},
	},
	{
		name:        "save-empty",
		explanation: "a Save of no positions (an empty or nil map) must succeed and store nothing",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{})
			s.save(t, nil)
			s.wantLoad(t, topic, nil)
		},
	},
	{
		name:        "load-cancelled",
		explanation: "a Load with a cancelled context must fail",
		run: func(t *testing.T, s *suite) {
			topic := s.topic(t, 1)
			s.save(t, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(3, 1)})
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := s.store.Load(ctx, s.group, topic)
			assert.Error(t, err, "Load(%q, %q) with a cancelled context: %s", s.group, topic, s.why)
		},
	},
	{
		name:        "concurrent-saves",
		explanation: "a Store must be safe for concurrent use: Saves of different partitions from several goroutines must all become visible",
		run: func(t *testing.T, s *suite) {
			const n = 8
			topic := s.topic(t, n)
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range int32(n) {
				wg.Go(func() {
					errs[i] = s.store.Save(t.Context(), s.group, map[polykafka.TopicPartition]offsetstore.Position{
						tp(topic, i): pos(100+int64(i), n),
					})
				})
			}
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "Save of partition %d: %s", i, s.why)
			}
			want := make(map[int32]offsetstore.Position, n)
			for i := range int32(n) {
				want[i] = pos(100+int64(i), n)
			}
			s.wantLoad(t, topic, want)
		},
	},
}
