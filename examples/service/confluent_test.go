//go:build cgo

package main

func init() { nativePrefix["confluent"] = "librdkafka: " }
