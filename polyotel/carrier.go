package polyotel

import (
	"slices"

	"github.com/polykafka/polykafka"
)

// headerCarrier is a propagation.TextMapCarrier over a record's headers.
type headerCarrier struct{ r *polykafka.Record }

// Get returns the value of the last header named key, or "".
func (c headerCarrier) Get(key string) string {
	for i := len(c.r.Headers) - 1; i >= 0; i-- {
		if c.r.Headers[i].Key == key {
			return string(c.r.Headers[i].Value)
		}
	}
	return ""
}

// Set replaces the headers named key by one with value. It never writes
// into the record's original header slice: the caller of Send owns it.
func (c headerCarrier) Set(key, value string) {
	hs := make([]polykafka.Header, 0, len(c.r.Headers)+1)
	for _, h := range c.r.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	c.r.Headers = append(hs, polykafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the header keys, each once.
func (c headerCarrier) Keys() []string {
	var out []string
	for _, h := range c.r.Headers {
		if !slices.Contains(out, h.Key) {
			out = append(out, h.Key)
		}
	}
	return out
}
