package mirror

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestProblemTextLowDisk: a step the mirror's store refused for disk space
// is named as such in the status, which anonymous clients read, without
// the path the error carries for the log.
func TestProblemTextLowDisk(t *testing.T) {
	err := fmt.Errorf("failed to stage: %w", &itlog.LowDiskError{Path: "/srv/sumd/sum.golang.org.db", Free: 1 << 20, Floor: 64 << 20})
	got := problemText(err)
	if !strings.Contains(got, "min-free-disk") || strings.Contains(got, "/srv") {
		t.Errorf("problemText(%v) = %q, want the floor named and no path", err, got)
	}
}

// TestForwardLowDisk: a forwarded lookup whose proof the mirror's store
// refuses for disk space is a 503 saying so, naming no path; the mirror
// stores nothing, and the same lookup succeeds once the store has room.
func TestForwardLowDisk(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	m, s := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s.SetHooks(itlog.MemHooks{BeforeCommit: func(*itlog.Batch) error {
		return &itlog.LowDiskError{Path: "/srv/sumd/mirror.db", Free: 1 << 20, Floor: 64 << 20}
	}})
	old := testRecord(17, 1)
	mv := module.Version{Path: old.Path, Version: old.Version}
	_, err := f.Ops().Lookup(ctx, mv)
	if status(err) != http.StatusServiceUnavailable || !contains(err, "disk is nearly full") || contains(err, "/srv") {
		t.Fatalf("forwarded lookup on a full disk = %v, want a 503 saying the disk is nearly full, naming no path", err)
	}
	if m.Err() != nil {
		t.Fatalf("the mirror's log stopped: %v", m.Err())
	}
	s.SetHooks(itlog.MemHooks{})
	if id, err := f.Ops().Lookup(ctx, mv); err != nil || id != 17 {
		t.Fatalf("forwarded lookup once there is room = %d, %v", id, err)
	}
}

// TestOriginDamaged: an origin answering that the data asked for is
// damaged in its database (sumdbclient.DamagedText) is reachable, and says
// so: a forwarded lookup is a 502 saying the origin reports its data
// damaged, and a round's status says the same. The lookup was the offline
// 404 ("it cannot reach its origin"), the status "the origin answered 500".
func TestOriginDamaged(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	f := newFollower(t, o, m, nil)
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.grow(300, 10)
	h := server.New(testName, o.log, server.Options{Logger: quiet})
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/lookup/") || strings.HasPrefix(r.URL.Path, "/tile/8/data/") {
			http.Error(w, sumdbclient.DamagedText, http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	}))
	r := testRecord(305, 1)
	_, err := f.Forward(ctx, module.Version{Path: r.Path, Version: r.Version})
	if status(err) != http.StatusBadGateway || !contains(err, "the origin "+testName+" reports its data damaged") {
		t.Errorf("forwarded lookup to an origin answering damaged = %v, want a 502 saying so", err)
	}
	if _, err := f.Sync(ctx); err == nil {
		t.Fatal("a round against an origin answering damaged data tiles succeeded")
	}
	if got := f.Status().Problem; !strings.Contains(got, "the origin reports the data the mirror asked for damaged") {
		t.Errorf("status after the round: %q, want it to say the origin reports its data damaged", got)
	}
}

// TestProblemTextTooLarge: a round whose fetch the origin answered 200
// with a body over its cap says the answer was too large, not "the origin
// answered 200".
func TestProblemTextTooLarge(t *testing.T) {
	err := &sumdbclient.FetchError{Path: "/latest", Status: http.StatusOK,
		Err: fmt.Errorf("%w: more than the 16384 bytes allowed", sumdbclient.ErrTooLarge)}
	if got := problemText(err); strings.Contains(got, "200") || !strings.Contains(got, "too large") {
		t.Errorf("problemText(%v) = %q, want it to say the origin's answer was too large", err, got)
	}
}
