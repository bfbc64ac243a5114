package harness

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestRatioPairsRounds(t *testing.T) {
	num, den := Cell{OursDirect, Call16}, Cell{RawDirect, Call16}
	r := &Report{Samples: []Sample{
		{Cell: num.ID(), Round: 1, Rate: 50},
		{Cell: den.ID(), Round: 1, Rate: 100},
		{Cell: num.ID(), Round: 2, Rate: 90},
		{Cell: den.ID(), Round: 2, Rate: 100},
		{Cell: num.ID(), Round: 3, Rate: 10}, // no partner: left out
		{Cell: den.ID(), Round: 4, Rate: 100, Err: "failed"},
		{Cell: num.ID(), Round: 4, Rate: 70},
		{Cell: num.ID(), Round: 5, Rate: 60},
		{Cell: den.ID(), Round: 5, Rate: 200},
	}}
	med, per := r.Ratio(num, den, rate)
	if want := []float64{0.5, 0.9, 0.3}; !slices.Equal(per, want) {
		t.Fatalf("per round %v, want %v", per, want)
	}
	if med != 0.5 {
		t.Fatalf("median %v, want 0.5", med)
	}
	if m, n := r.Median(num, rate); m != 60 || n != 5 {
		t.Fatalf("Median = %v over %d, want 60 over 5", m, n)
	}
	if m, n := r.Median(Cell{NATS, Cast}, rate); !math.IsNaN(m) || n != 0 {
		t.Fatalf("Median of an absent cell = %v over %d", m, n)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestEveryTargetNamesTwoCells(t *testing.T) {
	ids := cellIDs()
	for _, d := range append(slices.Clone(targetRatios), contextRatios()...) {
		if !slices.Contains(ids, d.num.ID()) || !slices.Contains(ids, d.den.ID()) {
			t.Errorf("%s: %s / %s is not a pair of cells", d.name, d.num.ID(), d.den.ID())
		}
	}
}

func TestOnlySelects(t *testing.T) {
	for _, c := range []struct {
		only []string
		want int
	}{
		{nil, len(Cells())},
		{[]string{"nats/call1"}, 1},
		{[]string{"call1"}, len(systems)},
		{[]string{"ours-direct/", "raw-direct"}, 2 * len(ops)},
		{[]string{"ours"}, 0},
	} {
		o := Options{Only: c.only}
		if got := len(o.selected()); got != c.want {
			t.Errorf("--only %q selects %d cells, want %d", c.only, got, c.want)
		}
	}
}

func TestOnlySelectsBaseline(t *testing.T) {
	for _, c := range []struct {
		only []string
		want []string
	}{
		{[]string{"ours-direct-base/call16"}, []string{"ours-direct-base/call16"}},
		{[]string{"ourproxy-base"}, []string{"ourproxy-base/call1", "ourproxy-base/call16", "ourproxy-base/call256", "ourproxy-base/cast", "ourproxy-base/fanout"}},
		// An operation: each baseline cell right after its current twin.
		{[]string{"call16"}, []string{"raw-direct/call16", "ours-direct/call16", "ours-direct-base/call16", "raw-3hop/call16",
			"ourproxy/call16", "ourproxy-base/call16", "ours-proxy/call16", "ours-proxy-base/call16", "nats/call16"}},
	} {
		o := Options{Only: c.only, BaselineBin: "/base/fabricbench"}
		var got []string
		for _, cell := range o.selected() {
			got = append(got, cell.ID())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("--only %q selects %q, want %q", c.only, got, c.want)
		}
	}
}

func TestParseFlagsBaseline(t *testing.T) {
	for _, c := range []struct {
		args    []string
		wantErr string // "" for success
		cells   int
	}{
		{[]string{"--only", "call1"}, "", len(systems)},
		{[]string{"--only", "ours-direct-base"}, "need --baseline-bin", 0},
		{[]string{"--only", "ours-proxy-base/call1"}, "need --baseline-bin", 0},
		{[]string{"--baseline-source", "abc"}, "need --baseline-bin", 0},
		{[]string{"--baseline-bin", "/b/fabricbench", "--only", "call1"}, "", len(systems) + len(baselinePairs)},
		{[]string{"--baseline-bin", "/b/fabricbench", "--only", "ours-proxy-base/call1", "--profile", "ours-proxy-base/call1"}, "", 1},
	} {
		o, ok := parseFlags(t, c.args, c.wantErr)
		if !ok {
			continue
		}
		if got := len(o.selected()); got != c.cells {
			t.Errorf("%q selects %d cells, want %d", c.args, got, c.cells)
		}
	}
}

func TestPrintBaseline(t *testing.T) {
	cur, base := Cell{OursDirect, Call1}, Cell{OursDirectBase, Call1}
	paired := []Sample{
		{Cell: cur.ID(), Round: 1, Rate: 110, P50: 90e-6, CPUPerOp: 40e-6},
		{Cell: base.ID(), Round: 1, Rate: 100, P50: 100e-6, CPUPerOp: 50e-6},
		{Cell: base.ID(), Round: 2, Rate: 100, P50: 100e-6, CPUPerOp: 50e-6},
		{Cell: cur.ID(), Round: 2, Rate: 130, P50: 110e-6, CPUPerOp: 60e-6},
		{Cell: cur.ID(), Round: 3, Rate: 120, P50: 120e-6, CPUPerOp: 45e-6},
		{Cell: base.ID(), Round: 3, Err: "exit status 2"},
	}
	for _, c := range []struct {
		name     string
		baseline string
		samples  []Sample
		want     []string // lines, spaces squeezed
		absent   []string // not in the section
		none     bool     // no section
	}{
		{name: "no baseline", samples: []Sample{{Cell: cur.ID(), Round: 1, Rate: 100}}, none: true},
		{
			name: "ours direct, three rounds, one failed", baseline: "abc1234", samples: paired,
			want: []string{
				"Current vs baseline (abc1234): current / baseline, paired per round, then the median",
				"comparison median per round current baseline",
				"ours direct, CALL, 1 in flight: msg/s 1.20 1.10 1.30 120 100 (2)",
				"ours direct, CALL, 1 in flight: p50 latency 1.00 0.90 1.10 110 µs 100 µs (2)",
				"ours direct, CALL, 1 in flight: CPU per op 1.00 0.80 1.20 45 µs 50 µs (2)",
			},
			absent: []string{"our proxy in raw", "ours proxied", "CAST"},
		},
		{
			name: "one-way op: no latency", baseline: "abc1234",
			samples: []Sample{
				{Cell: Cell{OursProxy, Cast}.ID(), Round: 1, Rate: 50, CPUPerOp: 20e-6},
				{Cell: Cell{OursProxyBase, Cast}.ID(), Round: 1, Rate: 100, CPUPerOp: 10e-6},
			},
			want: []string{
				"ours proxied, CAST (1 sender): msg/s 0.50 0.50 50 100",
				"ours proxied, CAST (1 sender): CPU per op 2.00 2.00 20 µs 10 µs",
			},
			absent: []string{": p50 latency", "ours direct,"},
		},
		{
			name: "baseline cell only, all failed", baseline: "abc1234",
			samples: []Sample{{Cell: Cell{OurProxyBase, Call16}.ID(), Round: 1, Err: "flag provided but not defined: -inline"}},
			want:    []string{"our proxy in raw, CALL, 16 in flight: msg/s - - -"},
		},
		{
			name: "baseline without its cells", baseline: "abc1234",
			samples: []Sample{{Cell: Cell{NATS, Call1}.ID(), Round: 1, Rate: 100}},
			want:    []string{"no cell of ours-direct-base, ourproxy-base, ours-proxy-base or of their current twins ran"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Report{Baseline: c.baseline, Samples: c.samples}
			var b strings.Builder
			r.Print(&b)
			var lines []string
			for _, l := range strings.Split(b.String(), "\n") {
				lines = append(lines, strings.Join(strings.Fields(l), " "))
			}
			for _, w := range c.want {
				if !slices.Contains(lines, w) {
					t.Errorf("no line %q in\n%s", w, b.String())
				}
			}
			if got := strings.Contains(b.String(), "Current vs baseline"); got == c.none {
				t.Errorf("section printed: %t, want %t:\n%s", got, !c.none, b.String())
			}
			for _, a := range c.absent {
				if strings.Contains(section(b.String()), a) {
					t.Errorf("%q printed in\n%s", a, b.String())
				}
			}
		})
	}
}

// section is the "Current vs baseline" part of a printed report.
func section(s string) string {
	_, after, _ := strings.Cut(s, "Current vs baseline")
	before, _, _ := strings.Cut(after, "\nRedis commands")
	return before
}
