package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// HandlerFunc implements one RPC method. ctx carries the caller's request
// context (RequestContext) and is cancelled when the server stops; args are
// the call's keyword arguments as the transport decoded them (both codecs
// give integers as int64, uint64 above its range, *big.Int beyond (JSON
// only), and other numbers as float64: docs/mixing-with-python.md). The
// ctx ends soon after the caller's deadline when the caller sent one
// (docs/lifecycle.md). The result must be encodable by the transport. To send an
// oslo-typed failure return a *RemoteError (NewRemoteError); any other error
// reaches the caller as a RuntimeError.
type HandlerFunc func(ctx context.Context, args map[string]any) (any, error)

// Endpoint is a set of methods served under one namespace and version, like
// an oslo endpoint object with its target.
type Endpoint struct {
	// Namespace must equal the message's namespace; "" matches messages
	// without one.
	Namespace string
	// Version is the implemented API version "X.Y[.Z]"; "1.0" when empty.
	Version string
	// Methods maps method names to their handlers.
	Methods map[string]HandlerFunc
}

// endpoint is a registered, validated Endpoint.
type endpoint struct {
	namespace string
	version   string
	methods   map[string]HandlerFunc
}

// defaultVersion is the version of endpoints and messages that name none.
const defaultVersion = "1.0"

// Server serves RPC calls and casts for a target, like oslo's RPCServer:
// register methods, Start, and Stop when done. Messages are dispatched to
// the endpoints by namespace, version and method (reference 6.3); they run
// on a pool of worker goroutines, at most WithMaxConcurrency at once, and
// the rest wait in arrival order; or, WithInline, one at a time on the
// driver's receive goroutine.
type Server struct {
	d      Driver
	target Target
	log    *slog.Logger
	r      *runner

	mu        sync.Mutex
	started   bool
	endpoints []*endpoint
	def       *endpoint // the endpoint Register adds to, once created
}

// NewServer returns a Server for target, which needs a topic and a server
// name. It does not listen until Start.
func NewServer(d Driver, target Target, opts ...ServerOption) (*Server, error) {
	if d == nil {
		return nil, errors.New("messaging: new server: nil driver")
	}
	if target.Topic == "" || target.Server == "" {
		return nil, fmt.Errorf("messaging: new server: %w: a server's target needs a topic and a server", ErrInvalidTarget)
	}
	o := newServerOptions(opts)
	if o.maxConcurrency < 1 {
		return nil, fmt.Errorf("messaging: new server: max concurrency %d is not positive", o.maxConcurrency)
	}
	s := &Server{d: d, target: target, log: o.logger}
	s.r = newRunner(d, o, s.serve, s.reject)
	return s, nil
}

// Register adds method to the default endpoint (namespace "", version
// "1.0"), which takes its place in the endpoint order at the first Register.
// It fails for an empty or private ("_" prefix) name, the reserved name
// "target", a nil fn, a name already registered there, or after Start.
func (s *Server) Register(method string, fn HandlerFunc) error {
	if err := validateMethod(method, fn); err != nil {
		return fmt.Errorf("messaging: register: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("messaging: register %q: server already started", method)
	}
	if s.def == nil {
		s.def = &endpoint{version: defaultVersion, methods: map[string]HandlerFunc{}}
		s.endpoints = append(s.endpoints, s.def)
	}
	if _, dup := s.def.methods[method]; dup {
		return fmt.Errorf("messaging: register %q: method already registered", method)
	}
	s.def.methods[method] = fn
	return nil
}

// RegisterEndpoint adds ep after the endpoints registered so far; dispatch
// tries them in that order. It fails for a malformed version, no methods, a
// method that Register would refuse, or after Start. ep.Methods is copied.
func (s *Server) RegisterEndpoint(ep Endpoint) error {
	e := &endpoint{namespace: ep.Namespace, version: ep.Version, methods: maps.Clone(ep.Methods)}
	if e.version == "" {
		e.version = defaultVersion
	}
	if _, ok := parseVersion(e.version); !ok {
		return fmt.Errorf("messaging: register endpoint: malformed version %q", ep.Version)
	}
	if len(e.methods) == 0 {
		return errors.New("messaging: register endpoint: no methods")
	}
	for _, name := range slices.Sorted(maps.Keys(e.methods)) {
		if err := validateMethod(name, e.methods[name]); err != nil {
			return fmt.Errorf("messaging: register endpoint: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("messaging: register endpoint: server already started")
	}
	s.endpoints = append(s.endpoints, e)
	return nil
}

// validateMethod applies oslo's rules once at registration, so that
// dispatch is only lookups (net/rpc's suitableMethods).
func validateMethod(name string, fn HandlerFunc) error {
	switch {
	case name == "":
		return errors.New("empty method name")
	case strings.HasPrefix(name, "_"):
		return fmt.Errorf("method %q: private names (leading underscore) cannot be called", name)
	case name == "target":
		// oslo reads an endpoint's "target" attribute as its Target.
		return fmt.Errorf("method %q: reserved name", name)
	case fn == nil:
		return fmt.Errorf("method %q: nil handler", name)
	}
	return nil
}

// Start listens on the server's target. Registration ends here; a stopped
// server cannot be started again (ErrClosed).
func (s *Server) Start() error {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	err := s.r.start(func(h Handler) (Listener, error) { return s.d.Listen(s.target, h) })
	if err != nil {
		return fmt.Errorf("messaging: start server %s: %w", s.target, err)
	}
	return nil
}

// Stop stops listening, waits for the running handlers until they finish
// or ctx ends, then cancels the handlers' ctx and waits for them to return.
// It returns ctx's error if it had to cancel. It is idempotent: later calls
// wait for the first one and return its result.
func (s *Server) Stop(ctx context.Context) error {
	if err := s.r.stop(ctx); err != nil {
		return fmt.Errorf("messaging: stop server %s: %w", s.target, err)
	}
	return nil
}

// serve dispatches one message and replies (a no-op for casts).
func (s *Server) serve(ctx context.Context, in Incoming) {
	var body, rc map[string]any
	if msg := in.Message(); msg != nil {
		body, rc = msg.Body, msg.Context
	}
	method, _ := body["method"].(string)
	result, f := s.dispatch(WithRequestContext(ctx, rc), body)
	if f != nil {
		s.log.Debug("rpc method failed", "method", method, "target", s.target.String(),
			"err", f.Class+": "+f.Message)
	}
	if err := in.Reply(result, f); err != nil {
		s.log.Warn("rpc reply failed", "method", method, "target", s.target.String(), "err", err)
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats { return s.r.snapshot() }

// reject answers a message that the stopping server will not run with
// StoppingFailure, so that the caller resends it to another server (or,
// with a driver that does not, fails at once rather than at its timeout).
// A cast is dropped: it has no reply.
func (s *Server) reject(in Incoming) {
	if !wantsReply(in) {
		s.log.Warn("cast dropped: the server stopped before running it", "target", s.target.String())
	}
	if err := in.Reply(nil, StoppingFailure("")); err != nil {
		s.log.Debug("rpc reply failed", "target", s.target.String(), "err", err)
	}
}
