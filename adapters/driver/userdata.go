package driver

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// userDataPrefix marks JoinGroup user data written by a polykafka adapter.
// It differs from the commit metadata's prefix ("polykafka:v1:baseline="),
// so neither decoder accepts the other's format.
const userDataPrefix = "polykafka:userdata:v1:"

// EncodeUserData returns the JoinGroup user data that carries the partition
// counts passed to Consumer.Rejoin: "polykafka:userdata:v1:" followed by
// "topic=count" pairs sorted by topic and joined by ";". The encoding is
// deterministic, so an unchanged view gives unchanged join metadata (no
// spurious rebalance), and shared, so that a leader on one backend can read
// the counts of members on another.
func EncodeUserData(counts map[string]int32) []byte {
	if len(counts) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(userDataPrefix)
	for i, t := range slices.Sorted(maps.Keys(counts)) {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(t)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(int(counts[t])))
	}
	return []byte(b.String())
}

// DecodeUserData returns the partition counts in user data written by
// EncodeUserData, or nil for anything else.
func DecodeUserData(b []byte) map[string]int32 {
	rest, ok := strings.CutPrefix(string(b), userDataPrefix)
	if !ok || rest == "" {
		return nil
	}
	out := make(map[string]int32)
	for _, kv := range strings.Split(rest, ";") {
		i := strings.LastIndexByte(kv, '=')
		if i <= 0 {
			return nil
		}
		n, err := strconv.ParseInt(kv[i+1:], 10, 32)
		if err != nil || n < 0 || strings.ContainsAny(kv[:i], "=;") {
			return nil
		}
		out[kv[:i]] = int32(n)
	}
	return out
}
