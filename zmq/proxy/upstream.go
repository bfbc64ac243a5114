package proxy

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
)

// upstreamSet decides which central publishers the local publisher's SUB
// follows: every PUB address the matchmaker lists, plus, for keep, one
// that has just left the list (after a Redis restart registrations come
// back one by one, and a partial read must not cut connections). A failed
// read changes nothing, and the first read after an outage restarts every
// entry's keep period. Pure logic: the caller supplies the clock.
type upstreamSet struct {
	keep   time.Duration
	seen   map[string]time.Time // address -> last read
	outage bool
}

func newUpstreamSet(keep time.Duration) *upstreamSet {
	return &upstreamSet{keep: keep, seen: map[string]time.Time{}}
}

// read records a successful read at now and returns the addresses to
// follow, sorted.
func (u *upstreamSet) read(pubs []matchmaker.Publisher, now time.Time) []string {
	if u.outage {
		for a := range u.seen {
			u.seen[a] = now
		}
		u.outage = false
	}
	for _, p := range pubs {
		u.seen[p.PubAddress] = now
	}
	out := make([]string, 0, len(u.seen))
	for a, t := range u.seen {
		if now.Sub(t) >= u.keep {
			delete(u.seen, a)
			continue
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// failed records a failed read.
func (u *upstreamSet) failed() { u.outage = true }

// follower reads the central publishers from the matchmaker every
// zmq_target_update, every half second while none is known (so that the
// first proxy is found at once, as servers do), and hands each new set to
// apply.
type follower struct {
	mm     matchmaker.Matchmaker
	set    *upstreamSet
	update time.Duration
	log    *slog.Logger
	stats  *counters
	apply  func(addrs []string) error // on the socket loop

	last    []string
	applied bool
	failing bool
}

// noneKnownRetry is the pause between reads while no central publisher is
// known.
const noneKnownRetry = 500 * time.Millisecond

// attempt reads once, applies a changed set and returns the pause before
// the next read.
func (f *follower) attempt(ctx context.Context) time.Duration {
	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	pubs, err := f.mm.Publishers(rctx)
	cancel()
	retry := min(f.update, maxRetry)
	if err != nil {
		f.stats.lookups[1].Add(1)
		f.set.failed()
		if ctx.Err() == nil && !f.failing {
			f.log.Warn("matchmaker read failed; keeping the central publishers known, retrying", "retry_in", retry, "err", err)
		}
		f.failing = true
		return retry
	}
	f.stats.lookups[0].Add(1)
	if f.failing {
		f.log.Info("matchmaker read restored")
		f.failing = false
	}
	addrs := f.set.read(pubs, time.Now())
	if !f.applied || !slices.Equal(addrs, f.last) {
		if err := f.apply(addrs); err != nil {
			return retry // the loop is stopping; Run notices
		}
		f.last, f.applied = addrs, true
		f.log.Info("central publishers", "publishers", addrs)
	}
	if len(addrs) == 0 {
		return min(f.update, noneKnownRetry)
	}
	return f.update
}

// run calls attempt after wait, then as long as ctx lasts.
func (f *follower) run(ctx context.Context, wait time.Duration) { repeat(ctx, wait, f.attempt) }
