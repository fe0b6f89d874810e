package tuf

import (
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestClockBackAfterJump signs the online metadata while the clock is a
// month ahead (a bad NTP step, a VM restored with a wrong clock), then
// with the clock put right. The server used to keep what it signed ahead
// until the clock caught up with it: a timestamp valid for a month
// instead of a day, which anyone who kept a copy could replay to freeze
// clients on it, and which the status showed as healthy. Now metadata
// signed in the future is re-signed at once, its versions still rising.
func TestClockBackAfterJump(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	const ahead = 30 * 24 * time.Hour
	f.clock.advance(ahead)
	before := f.signOnline()
	f.clock.advance(-ahead + time.Minute)
	f.mustFetch(cache)

	s := f.signOnline()
	now := f.clock.Now()
	for _, r := range []struct {
		role     string
		signed   bool
		lifetime time.Duration
	}{{metadata.TIMESTAMP, s.Timestamp, TimestampExpiry}, {metadata.SNAPSHOT, s.Snapshot, SnapshotExpiry}} {
		if exp := s.Status.Expires[r.role]; !r.signed || exp.After(now.Add(r.lifetime)) {
			t.Errorf("%s after the clock was put back: signed %v, expires %s; want a new version expiring by %s",
				r.role, r.signed, exp, now.Add(r.lifetime))
		}
		if v, was := s.Status.Versions[r.role], before.Status.Versions[r.role]; v <= was {
			t.Errorf("%s version %d after the clock was put back, want above %d", r.role, v, was)
		}
	}
	f.mustFetch(cache)
	if s := f.signOnline(); s.Timestamp || s.Snapshot {
		t.Errorf("signed again on the next tick (timestamp %v, snapshot %v): want nothing until the renewal", s.Timestamp, s.Snapshot)
	}
}
