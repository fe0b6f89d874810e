package mirror

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestRoundFetchesWithoutTurn: a round's step fetched from the origin while
// holding the turn that forwarded lookups store in, so a lookup of a
// version the held tree already covers waited behind a slow origin until
// its ForwardTimeout and got a 503. A step fetches without the turn now,
// and commits only if the mirror is still as it planned: a forwarded lookup
// that moved the head meanwhile makes it plan again, and the round stores
// only what the new plan fetched. The origin blocks the round's data tile
// until the lookup returns: no timing.
func TestRoundFetchesWithoutTurn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		module int // the version looked up
		at     int // the origin's size when it answers that lookup
		stored int // the records the round stores
	}{
		// Already covered by the held tree: the lookup only adds its record.
		{name: "held", module: 5, at: 300, stored: 2}, // 303 and 313
		// Answered with a head between the held one and the round's: the
		// lookup extends the mirror to 310 (with 303, selected, and 305),
		// and the round, planned from 300, plans again from 310.
		{name: "moved", module: 305, at: 310, stored: 1}, // 313
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			o := newOrigin(t, 300)
			m, _ := newMirror(t, o)
			sel, err := ParseSelection([]string{"golang.org/x/*"})
			if err != nil {
				t.Fatal(err)
			}
			f := newFollower(t, o, m, func(opts *Options) {
				opts.Select = sel
				opts.ForwardTimeout = 10 * time.Second
				// The round's fetch outlasts the lookup whatever the
				// client's timeout: the origin holds it, not the clock.
				c, err := sumdbclient.New(o.srv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				opts.Client = c
			})
			if _, err := f.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			o.grow(300, tc.at-300)
			r := testRecord(tc.module, 1)
			lookupPath := "/lookup/" + r.Path + "@" + r.Version
			answer := httptest.NewRecorder()
			o.h.ServeHTTP(answer, httptest.NewRequest(http.MethodGet, lookupPath, nil))
			if answer.Code != http.StatusOK {
				t.Fatalf("lookup at the origin: %d %s", answer.Code, answer.Body)
			}
			o.grow(tc.at, 320-tc.at)

			// The round's data tile (of the tree of 320) waits for
			// release; the lookup is answered as the origin did at tc.at,
			// as a lagging replica would.
			fetching, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			o.serve(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				switch req.URL.Path {
				case "/tile/8/data/001.p/64":
					once.Do(func() { close(fetching) })
					select {
					case <-release:
					case <-req.Context().Done():
						return
					}
				case lookupPath:
					w.Write(answer.Body.Bytes())
					return
				}
				o.h.ServeHTTP(w, req)
			}))
			type round struct {
				res *Result
				err error
			}
			done := make(chan round)
			go func() {
				res, err := f.Sync(ctx)
				done <- round{res, err}
			}()
			<-fetching
			id, err := f.Ops().Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
			close(release)
			if err != nil || id != int64(tc.module) {
				t.Errorf("lookup while a round fetches: id %d, %v; want %d", id, err, tc.module)
			}
			got := <-done
			if got.err != nil {
				t.Fatalf("the round: %v", got.err)
			}
			if got.res.From.N != 300 || got.res.To.N != 320 || got.res.Commits != 1 || got.res.Records != tc.stored {
				t.Errorf("the round went from %d to %d in %d commits storing %d records; want 300 to 320 in 1 storing %d",
					got.res.From.N, got.res.To.N, got.res.Commits, got.res.Records, tc.stored)
			}
			if err == nil {
				sameAs(t, m, o.log, func(id int64) bool { return id%10 == 3 || id == int64(tc.module) })
			}
			if st := f.Status(); st.SecurityEvents != 0 {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// TestRoundKeepsLookedWhenMoved: a round of a mirror selecting go.sum
// versions looks them up at the origin first and stores those past the
// held tree with the step that reaches their head. A forwarded lookup that
// moved the head while the round fetched (without the turn) made the round
// plan again from the new head, or find its target reached, and the
// go.sum versions below the new head were stored by neither: the round
// succeeded without them. They are stored now, whichever way the head moved.
func TestRoundKeepsLookedWhenMoved(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int // the origin's size when it answers the forwarded lookup
	}{
		{name: "reached", at: 320}, // the lookup takes the mirror to the round's target
		{name: "between", at: 310}, // the round plans again from 310
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			o := newOrigin(t, 300)
			m, _ := newMirror(t, o)
			gs := filepath.Join(t.TempDir(), "go.sum")
			if err := os.WriteFile(gs, testRecord(0, 1).Text(), 0o644); err != nil {
				t.Fatal(err)
			}
			sel, err := ParseSelection([]string{gs})
			if err != nil {
				t.Fatal(err)
			}
			f := newFollower(t, o, m, func(opts *Options) {
				opts.Select = sel
				opts.ForwardTimeout = 10 * time.Second
				c, err := sumdbclient.New(o.srv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				opts.Client = c
			})
			if _, err := f.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			// The go.sum now lists 305 too, which the origin records
			// next; the lookup forwarded meanwhile is of 307, unlisted.
			o.grow(300, tc.at-300)
			fwd := testRecord(307, 1)
			lookupPath := "/lookup/" + fwd.Path + "@" + fwd.Version
			answer := httptest.NewRecorder()
			o.h.ServeHTTP(answer, httptest.NewRequest(http.MethodGet, lookupPath, nil))
			if answer.Code != http.StatusOK {
				t.Fatalf("lookup at the origin: %d %s", answer.Code, answer.Body)
			}
			o.grow(tc.at, 320-tc.at)
			listed := append(testRecord(0, 1).Text(), testRecord(305, 1).Text()...)
			if err := os.WriteFile(gs, listed, 0o644); err != nil {
				t.Fatal(err)
			}

			// The round's first fetch of the level-0 tile of the tree of
			// 320 waits for release; the forwarded lookup's fetches pass.
			fetching, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			o.serve(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				switch req.URL.Path {
				case "/tile/8/0/001.p/64":
					first := false
					once.Do(func() { first = true; close(fetching) })
					if first {
						select {
						case <-release:
						case <-req.Context().Done():
							return
						}
					}
				case lookupPath:
					w.Write(answer.Body.Bytes())
					return
				}
				o.h.ServeHTTP(w, req)
			}))
			done := make(chan error, 1)
			go func() {
				_, err := f.Sync(ctx)
				done <- err
			}()
			<-fetching
			id, err := f.Ops().Lookup(ctx, module.Version{Path: fwd.Path, Version: fwd.Version})
			close(release)
			if err != nil || id != 307 {
				t.Fatalf("lookup while a round fetches: id %d, %v; want 307", id, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the round: %v", err)
			}
			if n := m.Published().Tree.N; n != 320 {
				t.Fatalf("the mirror holds tree %d, want 320", n)
			}
			sameAs(t, m, o.log, func(id int64) bool { return id == 0 || id == 305 || id == 307 })
		})
	}
}
