package proxy

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/oslozmq/fabric/zmq/wire"
)

// Drop reasons of the proxy itself, beside the labels of wire.DropReason.
const (
	reasonMalformed     = "malformed"
	reasonTooManyFrames = "too_many_frames" // more than zsock.MaxFrames frames
	reasonUnroutable    = "unroutable"      // no peer with the routing key's identity
	reasonQueueFull     = "queue_full"      // the peer's queue_per_peer messages wait already
	reasonSendFailed    = "send_failed"     // any other send error
)

// dropReasons are the values of the reason label, every one exported from
// the start so that rates work before the first drop.
var dropReasons = [...]string{
	"short", "no_delimiter", "unsupported_version", "unknown_type",
	"empty_id", "empty_identity", "bad_payload", reasonMalformed,
	reasonTooManyFrames, reasonUnroutable, reasonQueueFull, reasonSendFailed,
}

// typeLabels are the values of the type label, by message type.
var typeLabels = [...]string{
	wire.Call:       "call",
	wire.Cast:       "cast",
	wire.CastFanout: "cast_fanout",
	wire.Notify:     "notify",
	wire.Reply:      "reply",
	wire.Ack:        "ack",
}

// Indexes of counters.peers, and the socket label values.
const (
	peersFrontend = iota
	peersBackend
	peersPublisher
)

var peerLabels = [...]string{peersFrontend: "frontend", peersBackend: "backend", peersPublisher: "publisher"}

// counters are written by the loop goroutine with atomic adds only, and
// read by the collector and Stats.
type counters struct {
	routed     [wire.Ack + 1]atomic.Uint64
	published  [wire.Ack + 1]atomic.Uint64
	dropped    [len(dropReasons)]atomic.Uint64
	pubSubAcks atomic.Uint64
	// unroutableAnswered: CALLs for a server not connected, answered
	// UnreachableFailure.
	unroutableAnswered atomic.Uint64
	peers              [len(peerLabels)]atomic.Int64
	registrations      [2]atomic.Uint64 // [0] succeeded, [1] failed

	// The local publisher's central publishers (local.go).
	upstreamKnown, upstreamConnected atomic.Int64
	lookups                          [2]atomic.Uint64 // [0] succeeded, [1] failed
}

// drop counts one dropped message; an unknown reason counts as malformed.
func (c *counters) drop(reason string) {
	for i, r := range dropReasons {
		if r == reason {
			c.dropped[i].Add(1)
			return
		}
	}
	c.drop(reasonMalformed)
}

// Stats is a snapshot of the proxy's counters.
type Stats struct {
	// Routed counts messages forwarded from one ROUTER to the other, by
	// type label: call, cast, cast_fanout, notify, reply, ack.
	Routed map[string]uint64
	// Published counts messages sent on the PUB: cast_fanout, notify.
	Published map[string]uint64
	// Dropped counts dropped messages by reason (see docs/proxy.md).
	Dropped map[string]uint64
	// PubSubAcks counts the ACKs the proxy sent for published messages.
	PubSubAcks uint64
	// UnroutableAnswered counts the CALLs for a server that is not
	// connected that the proxy answered with UnreachableFailure (each is
	// also counted as dropped, unroutable).
	UnroutableAnswered uint64
	// Peers counts connected peers by socket: frontend, backend (double
	// mode only) and publisher.
	Peers map[string]int64
	// Registrations and RegistrationFailures count matchmaker
	// registration rounds.
	Registrations, RegistrationFailures uint64
	// Upstream: the local publisher's central publishers (LocalPublisher
	// only).
	Upstream UpstreamStats
}

// Stats returns the current counters.
func (p *Proxy) Stats() Stats {
	c := &p.stats
	s := Stats{
		Routed:               map[string]uint64{},
		Published:            map[string]uint64{},
		Dropped:              map[string]uint64{},
		PubSubAcks:           c.pubSubAcks.Load(),
		UnroutableAnswered:   c.unroutableAnswered.Load(),
		Peers:                map[string]int64{},
		Registrations:        c.registrations[0].Load(),
		RegistrationFailures: c.registrations[1].Load(),
	}
	for t := wire.Call; t <= wire.Ack; t++ {
		s.Routed[typeLabels[t]] = c.routed[t].Load()
	}
	for _, t := range []wire.MsgType{wire.CastFanout, wire.Notify} {
		s.Published[typeLabels[t]] = c.published[t].Load()
	}
	for i, r := range dropReasons {
		s.Dropped[r] = c.dropped[i].Load()
	}
	for i, l := range peerLabels {
		if i == peersBackend && p.mode == ModeSingle {
			continue
		}
		s.Peers[l] = c.peers[i].Load()
	}
	return s
}

// collector exports counters as Prometheus metrics when scraped, so the hot
// path does nothing but atomic adds.
type collector struct {
	c      *counters
	double bool

	routed, published, dropped, acks, unroutable, peers, registrations *prometheus.Desc
}

func newCollector(c *counters, double bool) *collector {
	return &collector{
		c:      c,
		double: double,
		routed: prometheus.NewDesc("oslo_zmq_proxy_messages_routed_total",
			"Messages forwarded from one ROUTER to the other, by message type.", []string{"type"}, nil),
		published: prometheus.NewDesc("oslo_zmq_proxy_messages_published_total",
			"Messages published on the PUB socket, by message type.", []string{"type"}, nil),
		dropped: prometheus.NewDesc("oslo_zmq_proxy_messages_dropped_total",
			"Messages dropped, by reason.", []string{"reason"}, nil),
		acks: prometheus.NewDesc("oslo_zmq_proxy_pubsub_acks_sent_total",
			"ACKs sent to clients for published messages (ack_pub_sub).", nil, nil),
		unroutable: prometheus.NewDesc("oslo_zmq_proxy_unroutable_calls_answered_total",
			"CALLs for a server that is not connected, answered with a ServerUnreachable failure.", nil, nil),
		peers: prometheus.NewDesc("oslo_zmq_proxy_connected_peers",
			"Peers connected to each socket (frontend, backend in double mode, publisher).", []string{"socket"}, nil),
		registrations: prometheus.NewDesc("oslo_zmq_proxy_registrations_total",
			"Matchmaker registration rounds, by result (ok, failed).", []string{"result"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.routed, c.published, c.dropped, c.acks, c.unroutable, c.peers, c.registrations} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for t := wire.Call; t <= wire.Ack; t++ {
		counter(c.routed, c.c.routed[t].Load(), typeLabels[t])
	}
	for _, t := range []wire.MsgType{wire.CastFanout, wire.Notify} {
		counter(c.published, c.c.published[t].Load(), typeLabels[t])
	}
	for i, r := range dropReasons {
		counter(c.dropped, c.c.dropped[i].Load(), r)
	}
	counter(c.acks, c.c.pubSubAcks.Load())
	counter(c.unroutable, c.c.unroutableAnswered.Load())
	counter(c.registrations, c.c.registrations[0].Load(), "ok")
	counter(c.registrations, c.c.registrations[1].Load(), "failed")
	for i, l := range peerLabels {
		if i == peersBackend && !c.double {
			continue // single mode: the front-end serves the servers too
		}
		ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(c.c.peers[i].Load()), l)
	}
}

// newHandler serves /metrics from a registry of the proxy's own (the
// proxy's metrics plus the Go runtime and process collectors) and /healthz
// from healthy (Proxy.Healthy).
func newHandler(col prometheus.Collector, healthy func() error) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		col,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("proxy: metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := healthy(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux, nil
}
