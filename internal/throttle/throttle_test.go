package throttle

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		every          time.Duration
		at             []time.Duration // offsets from t0
		wantOK         []bool
		wantSuppressed []uint64
		wantTotal      uint64
	}{
		{"first is admitted", 0, []time.Duration{0}, []bool{true}, []uint64{0}, 0},
		{"burst within the default second", 0,
			[]time.Duration{0, 1, 2, 999 * time.Millisecond, time.Second},
			[]bool{true, false, false, false, true}, []uint64{0, 0, 0, 0, 3}, 3},
		{"own interval", 10 * time.Millisecond,
			[]time.Duration{0, 5 * time.Millisecond, 10 * time.Millisecond, 11 * time.Millisecond, 30 * time.Millisecond},
			[]bool{true, false, true, false, true}, []uint64{0, 0, 1, 0, 1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := Throttle{Every: tt.every}
			for i, d := range tt.at {
				ok, n := th.Allow(t0.Add(d))
				if ok != tt.wantOK[i] || n != tt.wantSuppressed[i] {
					t.Errorf("event %d at +%v: Allow = %v, %d; want %v, %d", i, d, ok, n, tt.wantOK[i], tt.wantSuppressed[i])
				}
			}
			if got := th.Suppressed(); got != tt.wantTotal {
				t.Errorf("Suppressed() = %d, want %d", got, tt.wantTotal)
			}
		})
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	var th Throttle
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { th.Allow(now) }); n != 0 {
		t.Errorf("Allow allocates %v times", n)
	}
}
