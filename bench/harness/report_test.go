package harness

import (
	"math"
	"slices"
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
