package messaging

import (
	"strconv"
	"strings"
)

// rpcVersion is an oslo RPC API version "major.minor[.revision]"; missing
// parts count as 0 and parts after the third are ignored, as oslo does.
type rpcVersion [3]int

// parseVersion parses s; it reports false for an empty string or a
// non-numeric part.
func parseVersion(s string) (rpcVersion, bool) {
	var v rpcVersion
	if s == "" {
		return v, false
	}
	// Cut, not Split: this runs for every message, without allocating.
	for i := range v {
		p, rest, more := strings.Cut(s, ".")
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
		if !more {
			break
		}
		s = rest
	}
	return v, true
}

// versionCompatible reports whether an endpoint implementing version impl
// can serve a request for version req (reference 6.3): same major, requested
// minor not above the implemented one and, when the minors are equal,
// requested revision not above the implemented one. Unparsable versions are
// never compatible.
func versionCompatible(impl, req string) bool {
	iv, ok := parseVersion(impl)
	if !ok {
		return false
	}
	rv, ok := parseVersion(req)
	if !ok {
		return false
	}
	switch {
	case rv[0] != iv[0]:
		return false
	case rv[1] != iv[1]:
		return rv[1] < iv[1]
	default:
		return rv[2] <= iv[2]
	}
}
