package messaging

import (
	"context"
	"maps"
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
