package harness

import (
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"slices"
	"strings"
	"testing"
)

func TestClientProcs(t *testing.T) {
	for _, c := range []struct{ callers, procs int }{
		{1, 1}, {2, 2}, {4, 2}, {5, 3}, {16, 4}, {64, 4}, {1024, maxClientProcs},
	} {
		if got := clientProcs(c.callers); got != c.procs {
			t.Errorf("clientProcs(%d) = %d, want %d", c.callers, got, c.procs)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		callers, procs int
		want           []int
	}{
		{1, 1, []int{1}},
		{64, 4, []int{16, 16, 16, 16}},
		{10, 4, []int{3, 3, 2, 2}},
	} {
		if got := split(c.callers, c.procs); !slices.Equal(got, c.want) {
			t.Errorf("split(%d, %d) = %v, want %v", c.callers, c.procs, got, c.want)
		}
	}
}

func TestScaleFlags(t *testing.T) {
	for _, c := range []struct {
		args             []string
		scale, only      bool
		reps             int
		servers, callers []int
		redisTargets     int
		wantErr          string
	}{
		{args: nil, scale: true, reps: 3, servers: defaultScaleServers, callers: defaultScaleCallers, redisTargets: 10000},
		{args: []string{"--quick"}, reps: 1, servers: defaultScaleServers, callers: defaultScaleCallers, redisTargets: 10000},
		{args: []string{"--quick", "--scale"}, scale: true, reps: 1, servers: defaultScaleServers, callers: defaultScaleCallers, redisTargets: 10000},
		{args: []string{"--scale=false"}, reps: 3, servers: defaultScaleServers, callers: defaultScaleCallers, redisTargets: 10000},
		{args: []string{"--scale-only", "--scale-servers", "1,2", "--scale-callers", "4", "--scale-reps", "5", "--redis-targets", "0"},
			scale: true, only: true, reps: 5, servers: []int{1, 2}, callers: []int{4}},
		{args: []string{"--scale-only", "--only", "nats"}, wantErr: "--scale-only"},
		{args: []string{"--scale-servers", "0,2"}, wantErr: "--scale-servers"},
		{args: []string{"--scale-callers", "4,4"}, wantErr: "twice"},
		{args: []string{"--scale-servers", "65"}, wantErr: "1 to 64"},
	} {
		o, ok := parseFlags(t, c.args, c.wantErr)
		if !ok {
			continue
		}
		if o.Scale != c.scale || o.ScaleOnly != c.only || o.ScaleReps != c.reps || o.RedisTargets != c.redisTargets ||
			!slices.Equal(o.ScaleServers, c.servers) || !slices.Equal(o.ScaleCallers, c.callers) {
			t.Errorf("%q: scale %v only %v reps %d servers %v callers %v redis %d", c.args,
				o.Scale, o.ScaleOnly, o.ScaleReps, o.ScaleServers, o.ScaleCallers, o.RedisTargets)
		}
	}
}

func TestScalePoints(t *testing.T) {
	o := Options{ScaleServers: []int{1, 16}, ScaleCallers: []int{64}}
	var ids []string
	for _, p := range o.scalePoints() {
		ids = append(ids, p.ID())
	}
	want := []string{"raw-direct/servers=1", "ours-direct/servers=1", "ours-proxy/servers=1",
		"raw-direct/servers=16", "ours-direct/servers=16", "ours-proxy/servers=16",
		"ours-direct/callers=64", "ours-proxy/callers=64"}
	if !slices.Equal(ids, want) {
		t.Fatalf("points %v, want %v", ids, want)
	}
}

func TestScaleRatioPairsRounds(t *testing.T) {
	one, four := "ours-direct/servers=1", "ours-direct/servers=4"
	r := &Report{Scale: []ScaleSample{
		{Point: one, Round: 1, Rate: 100},
		{Point: four, Round: 1, Rate: 50},
		{Point: one, Round: 2, Rate: 200},
		{Point: four, Round: 2, Rate: 160},
		{Point: four, Round: 3, Rate: 10}, // no partner: left out
		{Point: one, Round: 4, Rate: 100, Err: "failed"},
		{Point: four, Round: 4, Rate: 70},
		{Point: one, Round: 5, Rate: 100},
		{Point: four, Round: 5, Rate: 60},
	}}
	med, per := r.scaleRatio(four, one, scaleRate)
	if want := []float64{0.5, 0.8, 0.6}; !slices.Equal(per, want) || med != 0.6 {
		t.Fatalf("ratio %v per round %v, want 0.6 and %v", med, per, want)
	}
	if m, n := r.ScaleMedian(four, scaleRate); m != 60 || n != 5 {
		t.Fatalf("ScaleMedian = %v over %d, want 60 over 5", m, n)
	}
}

func TestShares(t *testing.T) {
	if got := shares([]int64{1, 3}); !slices.Equal(got, []float64{0.25, 0.75}) {
		t.Errorf("shares(1, 3) = %v", got)
	}
	if got := shares([]int64{0, 0}); got != nil {
		t.Errorf("shares(0, 0) = %v, want nil", got)
	}
}

// A scale-only report prints the scale tables and none of the cells'.
func TestPrintScaleOnly(t *testing.T) {
	r := &Report{ScaleSettings: "1 rounds"}
	for _, p := range (&Options{ScaleServers: []int{1, 2}, ScaleCallers: []int{4}}).scalePoints() {
		r.Scale = append(r.Scale, ScaleSample{Point: p.ID(), Series: string(p.Series), System: p.System,
			Servers: p.Servers, Callers: p.Callers, Procs: p.Procs, Round: 1, Rate: 1000 * float64(p.Servers),
			Shares: shares(make([]int64, p.Servers))})
	}
	r.RedisScale = &redisscale.Result{Targets: 10, TargetUpdate: 60, Refresh: redisscale.Write{Commands: 60},
		TopicLookup: redisscale.Lookup{Key: "ROUTER/compute", Hosts: 10, Lookups: 5, P50: 0.001}}
	var b strings.Builder
	r.Print(&b)
	out := b.String()
	flat := strings.Join(strings.Fields(out), " ") // the columns' padding aside
	for _, want := range []string{"raw direct 2 2,000 2.00", "ours proxied 4 2 x 2 4,000 1.00", "ROUTER/compute (10 hosts)", "1 commands/s"} {
		if !strings.Contains(flat, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Medians") {
		t.Errorf("a scale-only report prints the cells' tables:\n%s", out)
	}
}

// parseFlags runs ParseFlags on args and checks its error against wantErr
// ("" for none); ok reports whether o is left to check.
func parseFlags(t *testing.T, args []string, wantErr string) (o Options, ok bool) {
	t.Helper()
	o, err := ParseFlags(args)
	switch {
	case wantErr != "":
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want one with %q", args, err, wantErr)
		}
		return o, false
	case err != nil:
		t.Errorf("%q: %v", args, err)
		return o, false
	}
	return o, true
}
