package driver_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka/adapters/driver"
)

// The vectors of Kafka's own test of Utils.murmur2 (UtilsTest.testMurmur2
// in apache/kafka, clients/src/test/java/org/apache/kafka/common/utils).
func TestMurmur2MatchesJava(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		assert.Equal(t, want, driver.Murmur2([]byte(in)), "murmur2(%q) as Kafka's Java client computes it", in)
	}
}

// KeyVectors pin KeyPartition for keys of every tail length; the
// conformance suite checks adapters against KeyPartition itself.
func TestKeyPartition(t *testing.T) {
	for _, c := range []struct {
		key  string
		n    int32
		want int32
	}{
		{"", 6, (driver.Murmur2(nil) & 0x7fffffff) % 6},
		{"21", 10, (-973932308 & 0x7fffffff) % 10},
		{"foobar", 7, (-790332482 & 0x7fffffff) % 7},
		{"abc", 3, 479470107 % 3},
	} {
		assert.Equal(t, c.want, driver.KeyPartition([]byte(c.key), c.n), "KeyPartition(%q, %d)", c.key, c.n)
	}
	assert.Equal(t, int32(-1), driver.KeyPartition([]byte("k"), 0), "no partitions: -1")
}
