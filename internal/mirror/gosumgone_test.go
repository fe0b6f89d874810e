package mirror

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnreadableGoSumStillFollows: a partial mirror whose -modules go.sum
// file could no longer be read (moved with its checkout, removed, made
// unreadable) failed every round before it asked the origin for anything,
// so it stopped following the origin's heads altogether, and the status
// blamed the origin ("following the origin failed"). The round now follows
// the origin to its latest head all the same, then fails saying that the
// go.sum files cannot be read, in the status too, naming no path.
func TestUnreadableGoSumStillFollows(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	m, _ := newMirror(t, o)
	gosum := filepath.Join(t.TempDir(), "app", "go.sum")
	sel, err := ParseSelection([]string{gosum})
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	res, err := f.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "go.sum") {
		t.Errorf("a round whose go.sum file is gone = %v, want an error naming the go.sum files", err)
	}
	if got := m.Published().Tree.N; got != 600 || res.To.N != 600 {
		t.Errorf("a round whose go.sum file is gone left the mirror at %d (result %d), want the origin's 600", got, res.To.N)
	}
	st := f.Status()
	if !strings.Contains(st.Problem, "go.sum") || strings.Contains(st.Problem, gosum) || strings.Contains(st.Problem, "origin failed") {
		t.Errorf("status problem = %q, want the go.sum files named as unreadable, without their path", st.Problem)
	}
	if st.Checked == nil {
		t.Errorf("status checked = nil, want the time the round confirmed the origin's latest head")
	}
	// Once the file is back, its versions are looked up and the problem
	// is gone.
	if err := os.MkdirAll(filepath.Dir(gosum), 0o755); err != nil {
		t.Fatal(err)
	}
	r := testRecord(17, 1)
	if err := os.WriteFile(gosum, r.Text(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Sync(ctx); err != nil {
		t.Fatalf("the round once the go.sum file is back: %v", err)
	}
	if p := f.Status().Problem; p != "" {
		t.Errorf("status problem once the go.sum file is back = %q, want none", p)
	}
	if _, err := m.ReadRecords(ctx, 17, 1); err != nil {
		t.Errorf("record 17, listed by the go.sum file back: %v", err)
	}
}
