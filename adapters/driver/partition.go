package driver

// Murmur2 is the 32-bit murmur2 hash exactly as Kafka's Java client
// computes it (org.apache.kafka.common.utils.Utils.murmur2: seed
// 0x9747b28c, little-endian 4-byte blocks).
func Murmur2(b []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(b)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := b[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition is the partition of a keyed record among n partitions,
// as Kafka's Java default partitioner (and every polykafka backend)
// computes it: the positive part of Murmur2(key), modulo n. It is the one
// definition of key placement in polykafka: every adapter's partitioner
// must agree with it (the conformance suite checks), whichever native
// partitioner it uses to get there. It returns -1 if n is not positive.
func KeyPartition(key []byte, n int32) int32 {
	if n <= 0 {
		return -1
	}
	return (Murmur2(key) & 0x7fffffff) % n
}
