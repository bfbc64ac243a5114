package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error of this package, so callers can tell
// a configuration problem from others with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// Error is a configuration problem, located as precisely as known: the file,
// the section and the option as written, and the value. Secret values
// (passwords, credentials in URLs) are masked. It wraps ErrInvalid and Err.
type Error struct {
	File    string // file name or source name; "" when not known
	Section string // section as it appears in the file, e.g. "DEFAULT"
	Option  string // option name as written, e.g. "rpc_zmq_min_port"
	Value   string // the offending value as written
	Err     error  // what is wrong, e.g. "not an integer"
}

// Error formats the problem as
// `file: [section] option = "value": reason`, leaving out unknown parts.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Section != "" {
		fmt.Fprintf(&b, "[%s] ", e.Section)
	}
	if e.Option != "" {
		fmt.Fprintf(&b, "%s = %q: ", e.Option, e.Value)
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(ErrInvalid.Error())
	}
	return b.String()
}

// Unwrap returns ErrInvalid and the cause, so errors.Is matches both (a
// missing file also matches fs.ErrNotExist).
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.Err}
}

// joinErrors returns nil, the only error, or all of them joined; a single
// *Error stays unwrapped so its text is not indented by errors.Join.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// isSecret tells whether an option's value must not appear in errors.
func isSecret(option string) bool {
	return strings.Contains(option, "password")
}

// unknownOption explains an unknown name, suggesting the closest known one.
func unknownOption(what, name string, known []string) error {
	if s := closest(name, known); s != "" {
		return fmt.Errorf("unknown %s (did you mean %q?)", what, s)
	}
	return fmt.Errorf("unknown %s", what)
}

// closest returns the known name nearest to name when it is near enough to
// be a plausible typo, else "".
func closest(name string, known []string) string {
	limit := len(name)/3 + 2 // distances below this look like slips
	best, bestDist := "", limit
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k
		}
		d := editDistance(name, k)
		if d >= limit && len(name) >= 3 && len(k) >= 3 && (strings.HasPrefix(name, k) || strings.HasPrefix(k, name)) {
			d = limit - 1 // "hostname" for "host"
		}
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
