package messaging

import (
	"context"
	"maps"
	"time"
)

// requestContextKey keys the oslo request context in a context.Context.
type requestContextKey struct{}

// WithRequestContext returns a copy of ctx that carries rc as the oslo
// request context: the dict that travels with every call, cast and
// notification sent with the returned ctx (reference 6.6). rc is copied
// (shallowly), so later changes to it do not affect messages.
func WithRequestContext(ctx context.Context, rc map[string]any) context.Context {
	return context.WithValue(ctx, requestContextKey{}, maps.Clone(rc))
}

// RequestContext returns a shallow copy of the oslo request context carried
// by ctx, or an empty map when there is none. On a server, the ctx given to a
// handler carries the caller's request context.
func RequestContext(ctx context.Context) map[string]any {
	rc, _ := ctx.Value(requestContextKey{}).(map[string]any)
	if rc == nil {
		return map[string]any{}
	}
	return maps.Clone(rc)
}

// timeoutKey carries a CALL's remaining timeout in the request context, in
// seconds (a float), so that work nobody waits for is not done: a server
// makes it a deadline from the request's arrival (no clock is compared
// across hosts), drops a request whose deadline has passed when a worker
// takes it, and ends the handler's ctx soon after. Services of the Python
// driver build their context from the keys they know and ignore it
// (docs/lifecycle.md).
const timeoutKey = "_timeout"

// takeTimeout removes the caller's timeout from a received request context.
func takeTimeout(rc map[string]any) (time.Duration, bool) {
	v, ok := rc[timeoutKey]
	if !ok {
		return 0, false
	}
	delete(rc, timeoutKey)
	var sec float64
	switch n := v.(type) {
	case float64:
		sec = n
	case int64:
		sec = float64(n)
	case uint64:
		sec = float64(n)
	case int:
		sec = float64(n)
	default:
		return 0, false
	}
	// A day at most: anything else is not a timeout a caller waits out.
	if !(sec > 0 && sec <= 86400) {
		return 0, false
	}
	return time.Duration(sec * float64(time.Second)), true
}

// putTimeout records a CALL's remaining timeout in its request context.
func putTimeout(rc map[string]any, d time.Duration) {
	rc[timeoutKey] = d.Seconds()
}
