package polysarama

// sarama logs through the package-level sarama.Logger; see "# Logging" in
// the package doc for what the bridge does and does not do.

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"

	"github.com/IBM/sarama"
)

var (
	installOnce sync.Once
	bridgeOn    bool // the bridge is sarama.Logger; set once, read after installOnce

	loggersMu sync.RWMutex
	loggers   = make(map[*slog.Logger]int) // open clients' loggers, with a count each
)

// bridge is the sarama.StdLogger installed by the first client opened.
type bridge struct{}

func (bridge) Print(v ...any)                 { forward(fmt.Sprint(v...)) }
func (bridge) Printf(format string, v ...any) { forward(fmt.Sprintf(format, v...)) }
func (bridge) Println(v ...any)               { forward(fmt.Sprintln(v...)) }

func forward(msg string) {
	msg = "sarama: " + strings.TrimRight(msg, "\n")
	ctx := context.Background()
	loggersMu.RLock()
	defer loggersMu.RUnlock()
	for l := range loggers {
		if l.Enabled(ctx, slog.LevelDebug) {
			l.Log(ctx, slog.LevelDebug, msg)
		}
	}
}

// isSaramaDefault reports whether l is the logger sarama starts with: a
// *log.Logger writing to io.Discard.
func isSaramaDefault(l sarama.StdLogger) bool {
	ll, ok := l.(*log.Logger)
	return ok && ll.Writer() == io.Discard
}

// registerLogger installs the bridge on first use (only over sarama's
// default logger) and adds l to the loggers it writes to. The returned
// function removes l again.
func registerLogger(l *slog.Logger) (unregister func()) {
	installOnce.Do(func() {
		if isSaramaDefault(sarama.Logger) {
			sarama.Logger = bridge{}
			bridgeOn = true
		}
	})
	if !bridgeOn {
		l.Debug("sarama: sarama.Logger was set by the application; sarama's own log lines go there")
		return func() {}
	}
	loggersMu.Lock()
	loggers[l]++
	loggersMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			loggersMu.Lock()
			defer loggersMu.Unlock()
			if loggers[l]--; loggers[l] <= 0 {
				delete(loggers, l)
			}
		})
	}
}
