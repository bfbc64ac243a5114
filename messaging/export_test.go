package messaging

import "time"

// Internals exposed to the external test package (package messaging_test
// imports messagingtest, which imports messaging).
var (
	VersionCompatible = versionCompatible
	PythonTimestamp   = pythonTimestamp
	NewUUID4          = newUUID4
)

// SetNotifierClock makes n stamp notifications with now.
func SetNotifierClock(n *Notifier, now func() time.Time) { n.now = now }

// OnWorkerIdle calls f each time one of s's handler workers becomes idle.
// Set it before Start.
func OnWorkerIdle(s *Server, f func()) { s.r.idled = f }
