package producer

import (
	"context"

	"github.com/polykafka/polykafka"
)

// HookSend is called for every record handed to the backend (by Send and
// SendAsync), after it was validated and stamped and before the backend
// sees it: it may add headers to r (append to a clipped r.Headers, such as
// slices.Clip(r.Headers), so that the caller's slice is never written),
// for example a trace context. It returns a function called once when the
// record's delivery is known, with the record (partition and offset set on
// success) and the error, before the caller's callback; or nil if it does
// not need to know.
//
// ctx is the context Send or SendAsync was called with. OnSend runs on the
// sending goroutine, the returned function on the backend's delivery
// goroutine: both must return quickly and be safe for concurrent use.
// Several HookSend values run in the order of Options.Hooks.
type HookSend interface {
	OnSend(ctx context.Context, r *polykafka.Record) func(r *polykafka.Record, err error)
}

func isHook(h any) bool {
	_, ok := h.(HookSend)
	return ok
}

// onSend runs the HookSend values for r and returns cb wrapped so that
// their delivery functions run first.
func (p *Producer) onSend(ctx context.Context, r *polykafka.Record, cb func(*polykafka.Record, error)) func(*polykafka.Record, error) {
	var dones []func(*polykafka.Record, error)
	for _, h := range p.s.Hooks {
		if h, ok := h.(HookSend); ok {
			if done := h.OnSend(ctx, r); done != nil {
				dones = append(dones, done)
			}
		}
	}
	if len(dones) == 0 {
		return cb
	}
	return func(r *polykafka.Record, err error) {
		for _, done := range dones {
			done(r, err)
		}
		if cb != nil {
			cb(r, err)
		} else if err != nil {
			p.logFailure(r, err)
		}
	}
}
