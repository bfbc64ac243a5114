// Package mmtest is the contract suite every matchmaker.Matchmaker must
// pass. The dummy and redis packages run it from their tests, so both
// backends give the driver the same semantics (reference 3.2, 3.3).
package mmtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
)

const (
	// long is the expire of registrations that must not expire during a test.
	long = time.Hour
	// short is the expire of registrations a test waits out. Redis TTLs are
	// whole seconds (reference 3.2); two of them leave a lookup made just
	// after registering over a second of slack on a loaded machine.
	short = 2 * time.Second
	// slack bounds how long past an expiry the real-time suite polls.
	slack = 5 * time.Second
	// poll is the interval of real-time polling.
	poll = 20 * time.Millisecond
)

// Harness is one fresh, empty matchmaker under test.
type Harness struct {
	// MM is the matchmaker. The suite closes it at the end of the subtest.
	MM matchmaker.Matchmaker
	// Advance, when set, moves MM's clock forward by d: expiry tests then
	// run instantly and exactly. When nil the suite lets real time pass: it
	// registers a probe that expires after d and polls, bounded, until MM
	// stops returning it, so time has passed as MM itself sees it.
	Advance func(d time.Duration)
}

// Run runs the contract suite in real time. newMM must return a fresh, empty
// matchmaker for each call; subtests run in parallel.
func Run(t *testing.T, newMM func(t *testing.T) matchmaker.Matchmaker) {
	RunHarness(t, func(t *testing.T) Harness { return Harness{MM: newMM(t)} })
}

// RunHarness runs the contract suite with a harness per subtest, for
// implementations whose clock the test controls.
func RunHarness(t *testing.T, newHarness func(t *testing.T) Harness) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if h.MM == nil {
				t.Fatal("mmtest: harness without a matchmaker")
			}
			t.Cleanup(func() {
				if err := h.MM.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.run(&suite{t: t, ctx: ctx, h: h, mm: h.MM})
		})
	}
}

// Cases returns the names of the suite's subtests, in order: a harness may
// use their count to act in the middle of the suite (a failover).
func Cases() []string {
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	return names
}

// suite carries one subtest's state and its helpers.
type suite struct {
	t      *testing.T
	ctx    context.Context
	h      Harness
	mm     matchmaker.Matchmaker
	probes atomic.Int64
}

var cases = []struct {
	name string
	run  func(s *suite)
}{
	{"RegisterOne", testRegisterOne},
	{"TwoHosts", testTwoHosts},
	{"UnregisterOne", testUnregisterOne},
	{"DuplicateRegistration", testDuplicateRegistration},
	{"UnknownTopic", testUnknownTopic},
	{"ServerKeys", testServerKeys},
	{"ServerCutAtAt", testServerCutAtAt},
	{"NoFallbackToTopic", testNoFallbackToTopic},
	{"UnregisterServer", testUnregisterServer},
	{"ListenerTypesIndependent", testListenerTypesIndependent},
	{"Expiry", testExpiry},
	{"NoExpiry", testNoExpiry},
	{"ReregistrationExtends", testReregistrationExtends},
	{"Publishers", testPublishers},
	{"PublishersExpire", testPublishersExpire},
	{"Routers", testRouters},
	{"RoutersExpire", testRoutersExpire},
	{"MarkUnavailable", testMarkUnavailable},
	{"InvalidInput", testInvalidInput},
	{"Concurrent", testConcurrent},
	{"CloseIdempotent", testCloseIdempotent},
}

var (
	compute   = matchmaker.Target{Topic: "compute"}
	computeS1 = matchmaker.Target{Topic: "compute", Server: "s1"}
	computeS2 = matchmaker.Target{Topic: "compute", Server: "s2"}
)

const (
	h1 = "127.0.0.1:9001"
	h2 = "127.0.0.1:9002"
	h3 = "127.0.0.1:9003"
)

func testRegisterOne(s *suite) {
	s.register(compute, h1, matchmaker.Router, long)
	s.wantHosts(compute, matchmaker.Router, h1)
	s.wantFanout(compute, matchmaker.Router, h1)
}

func testTwoHosts(s *suite) {
	s.register(compute, h1, matchmaker.Router, long)
	s.register(compute, h2, matchmaker.Router, long)
	s.wantHosts(compute, matchmaker.Router, h1, h2)
}

func testUnregisterOne(s *suite) {
	s.register(compute, h1, matchmaker.Router, long)
	s.register(compute, h2, matchmaker.Router, long)
	s.unregister(compute, h1, matchmaker.Router)
	s.wantHosts(compute, matchmaker.Router, h2)
	s.unregister(compute, h3, matchmaker.Router) // never registered: no-op
	s.unregister(compute, h2, matchmaker.Router)
	s.wantHosts(compute, matchmaker.Router)
}

func testDuplicateRegistration(s *suite) {
	for range 3 {
		s.register(computeS1, h1, matchmaker.Router, long)
	}
	s.wantHosts(compute, matchmaker.Router, h1)
	s.wantHosts(computeS1, matchmaker.Router, h1)
	s.unregister(computeS1, h1, matchmaker.Router)
	s.wantHosts(compute, matchmaker.Router)
}

func testUnknownTopic(s *suite) {
	s.wantHosts(matchmaker.Target{Topic: "nobody"}, matchmaker.Router)
	s.wantFanout(matchmaker.Target{Topic: "nobody", Server: "s1"}, matchmaker.Dealer)
	s.wantPublishers()
	s.wantRouters()
}

func testServerKeys(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, long)
	s.wantHosts(compute, matchmaker.Router, h1)
	s.wantHosts(computeS1, matchmaker.Router, h1)
	s.wantFanout(computeS1, matchmaker.Router, h1)
	s.wantFanout(compute, matchmaker.Router, h1)
}

// Cinder names servers "host@backend"; keys keep only "host" (reference 3.2).
func testServerCutAtAt(s *suite) {
	s.register(matchmaker.Target{Topic: "volume", Server: "node1@lvm"}, h1, matchmaker.Router, long)
	s.wantHosts(matchmaker.Target{Topic: "volume", Server: "node1"}, matchmaker.Router, h1)
	s.wantHosts(matchmaker.Target{Topic: "volume", Server: "node1@lvm"}, matchmaker.Router, h1)
	s.wantHosts(matchmaker.Target{Topic: "volume", Server: "node1@ceph"}, matchmaker.Router, h1)
	s.wantHosts(matchmaker.Target{Topic: "volume"}, matchmaker.Router, h1)
}

// A cast to an unknown server must not land on another server (reference
// 3.3, gotcha 9).
func testNoFallbackToTopic(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, long)
	s.register(compute, h2, matchmaker.Router, long)
	s.wantHosts(matchmaker.Target{Topic: "compute", Server: "unknown"}, matchmaker.Router)
	s.wantHosts(computeS1, matchmaker.Router, h1)
}

func testUnregisterServer(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, long)
	s.register(computeS2, h2, matchmaker.Router, long)
	s.unregister(computeS1, h1, matchmaker.Router)
	s.wantHosts(computeS1, matchmaker.Router)
	s.wantHosts(compute, matchmaker.Router, h2)
	s.wantHosts(computeS2, matchmaker.Router, h2)
}

func testListenerTypesIndependent(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, long)
	s.register(computeS1, h2, matchmaker.Dealer, long)
	s.wantHosts(computeS1, matchmaker.Router, h1)
	s.wantHosts(computeS1, matchmaker.Dealer, h2)
	s.wantFanout(compute, matchmaker.Dealer, h2)
	s.unregister(computeS1, h2, matchmaker.Dealer)
	s.wantHosts(compute, matchmaker.Dealer)
	s.wantHosts(compute, matchmaker.Router, h1)
}

func testExpiry(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, short)
	s.wantHosts(computeS1, matchmaker.Router, h1)
	s.wantHosts(compute, matchmaker.Router, h1)
	s.pass(short)
	s.wantHosts(computeS1, matchmaker.Router)
	s.wantHosts(compute, matchmaker.Router)
}

func testNoExpiry(s *suite) {
	// Different topics and hosts: in Redis a TTL covers the whole set and
	// the host's liveness key, so mixing expiring and permanent entries on
	// one key or host is not meaningful (reference 3.2).
	s.register(matchmaker.Target{Topic: "zero"}, h1, matchmaker.Router, 0)
	s.register(matchmaker.Target{Topic: "negative", Server: "s1"}, h2, matchmaker.Dealer, -time.Second)
	s.pass(short)
	s.wantHosts(matchmaker.Target{Topic: "zero"}, matchmaker.Router, h1)
	s.wantHosts(matchmaker.Target{Topic: "negative", Server: "s1"}, matchmaker.Dealer, h2)
	s.wantHosts(matchmaker.Target{Topic: "negative"}, matchmaker.Dealer, h2)
	if s.h.Advance != nil {
		s.h.Advance(1000 * time.Hour)
		s.wantHosts(matchmaker.Target{Topic: "zero"}, matchmaker.Router, h1)
	}
}

func testReregistrationExtends(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, short)
	if s.h.Advance != nil {
		s.h.Advance(short / 2)
	}
	s.register(computeS1, h1, matchmaker.Router, long)
	s.pass(short)
	s.wantHosts(computeS1, matchmaker.Router, h1)
	s.wantHosts(compute, matchmaker.Router, h1)
	if s.h.Advance != nil {
		s.h.Advance(long)
		s.wantHosts(computeS1, matchmaker.Router)
	}
}

var (
	pub1 = matchmaker.Publisher{PubAddress: "127.0.0.1:17001", RouterAddress: "127.0.0.1:17003"}
	pub2 = matchmaker.Publisher{PubAddress: "127.0.0.1:17011", RouterAddress: "127.0.0.1:17013"}
)

func testPublishers(s *suite) {
	s.check(s.mm.RegisterPublisher(s.ctx, pub1, long), "RegisterPublisher")
	s.check(s.mm.RegisterPublisher(s.ctx, pub2, long), "RegisterPublisher")
	s.check(s.mm.RegisterPublisher(s.ctx, pub2, long), "RegisterPublisher again")
	s.wantPublishers(pub1, pub2)
	s.check(s.mm.UnregisterPublisher(s.ctx, pub1), "UnregisterPublisher")
	s.wantPublishers(pub2)
}

func testPublishersExpire(s *suite) {
	s.check(s.mm.RegisterPublisher(s.ctx, pub1, short), "RegisterPublisher")
	s.wantPublishers(pub1)
	s.pass(short)
	s.wantPublishers()
}

func testRouters(s *suite) {
	s.check(s.mm.RegisterRouter(s.ctx, h1, long), "RegisterRouter")
	s.check(s.mm.RegisterRouter(s.ctx, h2, 0), "RegisterRouter")
	s.check(s.mm.RegisterRouter(s.ctx, h2, 0), "RegisterRouter again")
	s.wantRouters(h1, h2)
	s.check(s.mm.UnregisterRouter(s.ctx, h1), "UnregisterRouter")
	s.wantRouters(h2)
}

func testRoutersExpire(s *suite) {
	s.check(s.mm.RegisterRouter(s.ctx, h1, short), "RegisterRouter")
	s.wantRouters(h1)
	s.pass(short)
	s.wantRouters()
}

func testMarkUnavailable(s *suite) {
	s.register(computeS1, h1, matchmaker.Router, long)
	s.register(computeS2, h2, matchmaker.Router, long)
	s.register(computeS1, h1, matchmaker.Dealer, long)
	other := matchmaker.Target{Topic: "other"}
	s.register(other, h1, matchmaker.Router, long)

	s.mm.MarkUnavailable("compute", h1)
	s.wantHosts(compute, matchmaker.Router, h2)
	s.wantHosts(computeS1, matchmaker.Router)
	s.wantFanout(computeS1, matchmaker.Router, h2)
	s.wantHosts(computeS2, matchmaker.Router, h2)
	s.wantHosts(computeS1, matchmaker.Dealer) // the mark is per topic, not per type
	s.wantHosts(other, matchmaker.Router, h1)

	s.mm.MarkAvailable("compute", h1)
	s.wantHosts(compute, matchmaker.Router, h1, h2)
	s.wantHosts(computeS1, matchmaker.Router, h1)
	s.wantHosts(computeS1, matchmaker.Dealer, h1)
}

func testInvalidInput(s *suite) {
	empty := matchmaker.Target{}
	errs := map[string]error{
		"Register empty topic":   s.mm.Register(s.ctx, empty, h1, matchmaker.Router, long),
		"Register empty host":    s.mm.Register(s.ctx, compute, "", matchmaker.Router, long),
		"Unregister empty host":  s.mm.Unregister(s.ctx, compute, "", matchmaker.Router),
		"RegisterPublisher half": s.mm.RegisterPublisher(s.ctx, matchmaker.Publisher{PubAddress: h1}, long),
		"RegisterRouter empty":   s.mm.RegisterRouter(s.ctx, "", long),
	}
	_, errs["Hosts empty topic"] = s.mm.Hosts(s.ctx, empty, matchmaker.Router)
	_, errs["HostsFanout empty topic"] = s.mm.HostsFanout(s.ctx, empty, matchmaker.Router)
	for call, err := range errs {
		if err == nil {
			s.t.Errorf("%s: nil error", call)
		}
	}
	s.wantRouters()
	s.wantPublishers()
}

func testConcurrent(s *suite) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			host := fmt.Sprintf("127.0.0.1:%d", 9100+i)
			for range 20 {
				if err := s.mm.Register(s.ctx, computeS1, host, matchmaker.Router, long); err != nil {
					s.t.Errorf("Register: %v", err)
					return
				}
				if _, err := s.mm.Hosts(s.ctx, compute, matchmaker.Router); err != nil {
					s.t.Errorf("Hosts: %v", err)
					return
				}
				s.mm.MarkUnavailable("compute", host)
				s.mm.MarkAvailable("compute", host)
			}
		})
	}
	wg.Wait()
	got := s.hosts(computeS1, matchmaker.Router)
	if len(got) != 8 {
		s.t.Fatalf("after concurrent registrations: %d hosts %v, want 8", len(got), got)
	}
}

func testCloseIdempotent(s *suite) {
	for i := range 2 {
		if err := s.mm.Close(); err != nil {
			s.t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

func (s *suite) check(err error, call string) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", call, err)
	}
}

func (s *suite) register(t matchmaker.Target, host string, lt matchmaker.ListenerType, expire time.Duration) {
	s.t.Helper()
	s.check(s.mm.Register(s.ctx, t, host, lt, expire), fmt.Sprintf("Register(%+v, %q, %s, %v)", t, host, lt, expire))
}

func (s *suite) unregister(t matchmaker.Target, host string, lt matchmaker.ListenerType) {
	s.t.Helper()
	s.check(s.mm.Unregister(s.ctx, t, host, lt), fmt.Sprintf("Unregister(%+v, %q, %s)", t, host, lt))
}

func (s *suite) hosts(t matchmaker.Target, lt matchmaker.ListenerType) []string {
	s.t.Helper()
	got, err := s.mm.Hosts(s.ctx, t, lt)
	s.check(err, fmt.Sprintf("Hosts(%+v, %s)", t, lt))
	return sorted(got)
}

func (s *suite) wantHosts(t matchmaker.Target, lt matchmaker.ListenerType, want ...string) {
	s.t.Helper()
	if got := s.hosts(t, lt); !slices.Equal(got, sorted(want)) {
		s.t.Errorf("Hosts(%+v, %s) = %q, want %q", t, lt, got, sorted(want))
	}
}

func (s *suite) wantFanout(t matchmaker.Target, lt matchmaker.ListenerType, want ...string) {
	s.t.Helper()
	got, err := s.mm.HostsFanout(s.ctx, t, lt)
	s.check(err, fmt.Sprintf("HostsFanout(%+v, %s)", t, lt))
	if got = sorted(got); !slices.Equal(got, sorted(want)) {
		s.t.Errorf("HostsFanout(%+v, %s) = %q, want %q", t, lt, got, sorted(want))
	}
}

func (s *suite) wantPublishers(want ...matchmaker.Publisher) {
	s.t.Helper()
	got, err := s.mm.Publishers(s.ctx)
	s.check(err, "Publishers")
	var gs, ws []string
	for _, p := range got {
		gs = append(gs, p.String())
	}
	for _, p := range want {
		ws = append(ws, p.String())
	}
	if gs, ws = sorted(gs), sorted(ws); !slices.Equal(gs, ws) {
		s.t.Errorf("Publishers = %q, want %q", gs, ws)
	}
}

func (s *suite) wantRouters(want ...string) {
	s.t.Helper()
	got, err := s.mm.Routers(s.ctx)
	s.check(err, "Routers")
	if got = sorted(got); !slices.Equal(got, sorted(want)) {
		s.t.Errorf("Routers = %q, want %q", got, sorted(want))
	}
}

// pass lets d of the matchmaker's time go by: through Advance if the harness
// has it, else by registering a probe that expires after d and polling until
// the matchmaker drops it (bounded, no bare sleep). Everything registered
// with an expire of d before the call has then expired too.
func (s *suite) pass(d time.Duration) {
	s.t.Helper()
	if s.h.Advance != nil {
		s.h.Advance(d)
		return
	}
	n := s.probes.Add(1)
	probe := matchmaker.Target{Topic: fmt.Sprintf("mmtest-probe-%d", n)}
	host := fmt.Sprintf("mmtest-probe-host-%d", n)
	s.register(probe, host, matchmaker.Router, d)
	deadline := time.Now().Add(d + slack)
	for {
		got, err := s.mm.Hosts(s.ctx, probe, matchmaker.Router)
		s.check(err, "Hosts(probe)")
		if len(got) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("probe registered with expire %v still listed after %v", d, d+slack)
		}
		select {
		case <-s.ctx.Done():
			s.t.Fatalf("waiting for the probe to expire: %v", s.ctx.Err())
		case <-time.After(poll):
		}
	}
}

func sorted(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}
