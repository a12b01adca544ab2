package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// memory returns the process's resident set size and its peak (VmRSS and
// VmHWM of /proc/self/status, in KiB), or zeros where there is no /proc.
func memory() (rss, peak int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			peak = n
		}
	}
	return rss, peak
}

// mib formats KiB as MiB, or "n/a".
func mib(kib int64) string {
	if kib <= 0 {
		return "n/a"
	}
	return strconv.FormatInt((kib+512)/1024, 10) + " MiB"
}
