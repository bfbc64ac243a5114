package zmq

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/fromconfig"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// Option configures a Transport.
type Option func(*options)

type options struct {
	mm  matchmaker.Matchmaker
	log *slog.Logger
}

// WithMatchmaker makes the transport use mm instead of building one from the
// configuration; the caller keeps ownership (Close does not close it). Share
// one dummy matchmaker between the transports of an all-in-one process.
func WithMatchmaker(mm matchmaker.Matchmaker) Option { return func(o *options) { o.mm = mm } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Transport is the ZeroMQ messaging.Driver.
type Transport struct {
	cfg    *config.Config
	log    *slog.Logger
	mm     matchmaker.Matchmaker
	ownMM  bool
	codec  wire.Codec
	zctx   *zsock.Context
	loop   *zsock.Loop
	ids    *idGen
	stats  counters
	calls  pendingCalls
	routes *routeCache

	// Loop goroutine only.
	rrSocks  map[string]*dealer
	fanSocks map[string]*dealer

	mu        sync.Mutex
	closed    bool
	listeners map[*listener]struct{}
	pubSubLog sync.Once

	bg       sync.WaitGroup
	bgCtx    context.Context // ends at Close; background loops watch it
	cancelBg context.CancelFunc
}

var _ messaging.Driver = (*Transport)(nil)

// New starts a transport for cfg. It builds the matchmaker the configuration
// names (dummy or redis) unless WithMatchmaker is given.
func New(cfg *config.Config, opts ...Option) (*Transport, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if cfg.UseRouterProxy {
		return nil, fmt.Errorf("%w: use_router_proxy = true (proxy mode) is not available in this build yet; set use_router_proxy = false", ErrUnsupported)
	}
	codec, err := wire.NewCodec(cfg.Serialization)
	if err != nil {
		return nil, fmt.Errorf("zmq: rpc_zmq_serialization: %w", err)
	}
	t := &Transport{
		cfg:       cfg,
		log:       o.log,
		mm:        o.mm,
		codec:     codec,
		ids:       newIDGen(),
		rrSocks:   make(map[string]*dealer),
		fanSocks:  make(map[string]*dealer),
		listeners: make(map[*listener]struct{}),
	}
	t.calls.m = make(map[string]chan callResult)
	if t.mm == nil {
		if t.mm, err = fromconfig.New(context.Background(), cfg, o.log); err != nil {
			return nil, err
		}
		t.ownMM = true
	}
	if t.zctx, err = zsock.NewContext(); err != nil {
		t.closeMM()
		return nil, err
	}
	if t.loop, err = zsock.NewLoop(o.log); err != nil {
		_ = t.zctx.Term()
		t.closeMM()
		return nil, err
	}
	t.routes = newRouteCache(t.mm, cfg, o.log)
	t.bgCtx, t.cancelBg = context.WithCancel(context.Background())
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		t.routes.refreshLoop(t.bgCtx, t.cfg.TargetUpdate)
	}()
	return t, nil
}

// Matchmaker returns the matchmaker the transport uses.
func (t *Transport) Matchmaker() matchmaker.Matchmaker { return t.mm }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats { return t.stats.snapshot() }

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close stops every listener, fails pending calls with messaging.ErrClosed,
// closes all sockets and the matchmaker it built. Safe to call twice.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ls := make([]*listener, 0, len(t.listeners))
	for l := range t.listeners {
		ls = append(ls, l)
	}
	t.mu.Unlock()

	for _, l := range ls {
		_ = l.Stop()
	}
	t.cancelBg()
	t.bg.Wait()
	t.calls.failAll(messaging.ErrClosed)
	// Casts, fanouts and notifications handed to the loop may still wait for
	// a connection (IMMEDIATE); give them the linger time to leave.
	dctx, cancel := context.WithTimeout(context.Background(), time.Duration(zsock.LingerMs(t.cfg))*time.Millisecond)
	if err := t.loop.Drain(dctx); err != nil {
		t.log.Warn("closing with messages that found no peer", "err", err)
	}
	cancel()
	_ = t.loop.Call(func() error {
		for _, m := range []map[string]*dealer{t.rrSocks, t.fanSocks} {
			for k, d := range m {
				t.loop.Remove(d.sock)
				_ = d.sock.Close()
				delete(m, k)
			}
		}
		return nil
	})
	t.loop.Close()
	err := t.zctx.Term()
	t.closeMM()
	return err
}

func (t *Transport) closeMM() {
	if t.ownMM && t.mm != nil {
		_ = t.mm.Close()
	}
}

// setCommonOptions applies the options every socket gets.
func (t *Transport) setCommonOptions(s *zsock.Socket) error { return zsock.CommonOptions(s, t.cfg) }
