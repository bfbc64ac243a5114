package messaging

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// request is the decoded body of an RPC message.
type request struct {
	method    string
	namespace string
	version   string
	args      map[string]any
}

// dispatch runs the method body asks for and returns its result, or the
// failure to send back. It never panics on malformed input.
func (s *Server) dispatch(ctx context.Context, body map[string]any) (any, *Failure) {
	req, f := parseRequest(body)
	if f != nil {
		return nil, f
	}
	fn, f := s.lookup(req)
	if f != nil {
		return nil, f
	}
	return s.invoke(ctx, fn, req)
}

// parseRequest reads method, args (default {}), namespace (default none) and
// version (default "1.0"), reference 6.3. Wrong types become the failures
// Python would raise for them.
func parseRequest(body map[string]any) (request, *Failure) {
	req := request{version: defaultVersion}
	var ok bool
	if req.method, ok = body["method"].(string); !ok || req.method == "" {
		return req, &Failure{Class: "KeyError", Module: builtinsModule, Message: "message has no method"}
	}
	switch a := body["args"].(type) {
	case nil:
		req.args = map[string]any{}
	case map[string]any:
		req.args = a
	default:
		return req, &Failure{Class: "TypeError", Module: builtinsModule,
			Message: fmt.Sprintf("%s() argument after ** must be a mapping, not %T", req.method, a)}
	}
	switch ns := body["namespace"].(type) {
	case nil:
	case string:
		req.namespace = ns
	default:
		return req, &Failure{Class: "TypeError", Module: builtinsModule, Message: fmt.Sprintf("namespace must be a string, not %T", ns)}
	}
	switch v := body["version"].(type) {
	case nil:
	case string:
		req.version = v
	default:
		return req, &Failure{Class: "TypeError", Module: builtinsModule, Message: fmt.Sprintf("version must be a string, not %T", v)}
	}
	return req, nil
}

// lookup finds the first endpoint whose namespace and version accept req
// and that has its method (oslo's RPCDispatcher._dispatch).
func (s *Server) lookup(req request) (HandlerFunc, *Failure) {
	s.mu.Lock()
	endpoints := s.endpoints
	s.mu.Unlock()
	compatible := false
	for _, ep := range endpoints {
		if ep.namespace != req.namespace || !versionCompatible(ep.version, req.version) {
			continue
		}
		if fn, ok := ep.methods[req.method]; ok {
			return fn, nil
		}
		compatible = true
	}
	if compatible {
		return nil, &Failure{Class: "NoSuchMethod", Module: dispatcherModule,
			Message: "Endpoint does not support RPC method " + req.method}
	}
	return nil, &Failure{Class: "UnsupportedVersion", Module: dispatcherModule,
		Message: fmt.Sprintf("Endpoint does not support RPC version %s. Attempted method: %s", req.version, req.method)}
}

// invoke runs fn, turning its error or panic into a failure.
func (s *Server) invoke(ctx context.Context, fn HandlerFunc, req request) (result any, f *Failure) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		tb := panicTrace(v)
		s.log.Error("rpc handler panicked", "method", req.method, "target", s.target.String(),
			"err", v, "stack", strings.Join(tb, ""))
		result, f = nil, &Failure{Class: "RuntimeError", Module: builtinsModule,
			Message: fmt.Sprintf("panic: %v", v), Traceback: tb}
	}()
	result, err := fn(ctx, req.args)
	if err != nil {
		return nil, failureOf(err)
	}
	return result, nil
}

// failureOf sends a *RemoteError in err's chain unchanged, so handlers can
// raise oslo-typed errors; anything else becomes a RuntimeError.
func failureOf(err error) *Failure {
	if re, ok := errors.AsType[*RemoteError](err); ok && re != nil {
		f := re.Failure
		return &f
	}
	return &Failure{Class: "RuntimeError", Module: builtinsModule, Message: err.Error()}
}

// maxPanicFrames bounds the traceback sent to the caller: enough to find the
// panic, short enough for a log line.
const maxPanicFrames = 10

// panicTrace formats the stack of a recovered panic as traceback lines
// (each ending in "\n" like Python's), from the panicking function up to the
// handler, without the runtime's and the dispatcher's own frames.
func panicTrace(v any) []string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	tb := []string{fmt.Sprintf("panic: %v\n", v)}
	inPanic, n := false, 0
	for {
		fr, more := frames.Next()
		switch {
		case fr.Function == "runtime.gopanic":
			inPanic = true
		case !inPanic || strings.HasPrefix(fr.Function, "runtime."):
			// the deferred recover, or the runtime's panic machinery
		case strings.HasSuffix(fr.Function, ".(*Server).invoke"):
			return tb
		default:
			tb = append(tb, fmt.Sprintf("  %s\n      %s:%d\n", fr.Function, fr.File, fr.Line))
			if n++; n == maxPanicFrames {
				return tb
			}
		}
		if !more {
			return tb
		}
	}
}
