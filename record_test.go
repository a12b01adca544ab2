package polykafka_test

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka"
)

type nativeMsg struct{ Offset int64 }

func TestRecordAsNativePointer(t *testing.T) {
	m := &nativeMsg{Offset: 7}
	r := polykafka.Record{Native: m}

	var p *nativeMsg
	assert.True(t, r.As(&p), "the native pointer itself")
	assert.Same(t, m, p)

	var v nativeMsg
	assert.True(t, r.As(&v), "the value a native pointer points to")
	assert.Equal(t, int64(7), v.Offset)

	var s string
	assert.False(t, r.As(&s), "neither the pointer nor its value is a string")

	var nilNative *nativeMsg
	r.Native = nilNative
	assert.False(t, r.As(&v), "a nil native pointer fills nothing")

	r.Native = nativeMsg{Offset: 3}
	assert.True(t, r.As(&v), "a native value")
	assert.Equal(t, int64(3), v.Offset)
	assert.False(t, r.As(&p), "a native value never fills a pointer")
}

// TestRecordFieldsSetInPlace guards the adapters' record conversions
// (setRecord/appendRecord in adapters/*), which write every field of a
// Record in a reused fetch buffer one by one, for speed: a field added to
// Record must be set there too, or a reused record would keep the previous
// fetch's value.
func TestRecordFieldsSetInPlace(t *testing.T) {
	var names []string
	rt := reflect.TypeFor[polykafka.Record]()
	for i := range rt.NumField() {
		names = append(names, rt.Field(i).Name)
	}
	assert.Equal(t, []string{"Topic", "Partition", "Offset", "Key", "Value", "Headers", "Timestamp", "Native"}, names,
		"Record's fields changed: set the new ones in every adapter's setRecord/appendRecord, then update this list")
}
