//go:build !cgo

// Package confluentbench is the confluent backend's benchmark pair; this
// program was built without cgo, which confluent-kafka-go needs, so there
// are no cases.
package confluentbench

import "github.com/polykafka/polykafka/internal/benchkit"

// Available reports whether the confluent cases exist: only with cgo.
const Available = false

// Pair is the confluent backend without cases.
var Pair = benchkit.Pair{Backend: "confluent"}
