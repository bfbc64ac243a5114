package cli

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestErrorTally(t *testing.T) {
	timeout := errors.New("call t info: timed out after 1s")
	refused := errors.New("call t info: refused")
	many := make([]error, maxErrorKinds+3)
	for i := range many {
		many[i] = fmt.Errorf("kind %d", i)
	}
	tests := []struct {
		name   string
		errs   []error
		want   []errorCount
		logged int // Warn lines: one per kind kept
	}{
		{"none", nil, []errorCount{}, 0},
		{"one kind", []error{timeout, timeout, timeout}, []errorCount{{timeout.Error(), 3}}, 1},
		{"kinds in the order first seen", []error{refused, timeout, refused}, []errorCount{{refused.Error(), 2}, {timeout.Error(), 1}}, 2},
		{"kinds past the bound counted together", append(many, many[maxErrorKinds+1], many[0]), nil, maxErrorKinds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			tally := &errorTally{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
			for _, err := range tt.errs {
				tally.add(err)
			}
			got := tally.list()
			if tt.want == nil {
				// The bounded case: the first maxErrorKinds kinds, then the rest together.
				tt.want = make([]errorCount, 0, maxErrorKinds+1)
				for i := range maxErrorKinds {
					tt.want = append(tt.want, errorCount{many[i].Error(), 1})
				}
				tt.want[0].Count = 2
				tt.want = append(tt.want, errorCount{otherErrors, 4})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("list() = %v, want %v", got, tt.want)
			}
			if n := strings.Count(logBuf.String(), "send failed"); n != tt.logged {
				t.Fatalf("%d failures logged, want %d:\n%s", n, tt.logged, logBuf.String())
			}
		})
	}
}

func TestBenchReportListsFailures(t *testing.T) {
	r := benchReport{errors: []errorCount{{"call t info: timed out after 1s", 3}}}
	var out bytes.Buffer
	r.print(&out)
	if !strings.Contains(out.String(), "failed: 3 x call t info: timed out after 1s\n") {
		t.Fatalf("summary does not list the failures:\n%s", out.String())
	}
}

// The client timestamp of a record is a float from us and Python's
// simulator, but any JSON peer may write a whole second as an integer.
func TestRecordTimestamp(t *testing.T) {
	for _, tc := range []struct {
		ts   any
		want float64
	}{
		{1.5e9 + 0.25, 1.5e9 + 0.25},
		{int64(1_500_000_000), 1.5e9},
		{"x", 0},
	} {
		_, got, _, ok := record([]any{int64(1), "cargo", tc.ts, nil, nil})
		if !ok || got != tc.want {
			t.Errorf("record(ts %#v) = %v, %v; want %v", tc.ts, got, ok, tc.want)
		}
	}
}
