package mirror

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSelectionExcludes: a partial mirror looked up at its origin every
// version its go.sum files list, at each round, those of a company's
// private modules too (GOPRIVATE, GONOSUMDB), which the go command never
// asks a checksum database about: a mirror of sum.golang.org told it the
// company's private module paths every -mirror-interval, as they are never
// there. A -modules entry "!pattern" now excludes the versions whose path
// matches: they are never looked up, and no record of them is kept.
func TestSelectionExcludes(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	var mu sync.Mutex
	var asked []string
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/lookup/") {
			mu.Lock()
			asked = append(asked, r.URL.Path)
			mu.Unlock()
		}
		o.h.ServeHTTP(w, r)
	}))
	m, _ := newMirror(t, o)
	gosum := filepath.Join(t.TempDir(), "go.sum")
	public := testRecord(17, 1)
	text := string(public.Text()) +
		"corp.example/secret v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n" +
		"corp.example/secret v1.0.0/go.mod h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	if err := os.WriteFile(gosum, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sel, err := ParseSelection([]string{gosum, "!corp.example/*", "golang.org/x/*", "!golang.org/x/mod3"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	res, err := f.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range asked {
		if strings.Contains(p, "corp.example") {
			t.Errorf("the origin was asked %s, which the selection excludes", p)
		}
	}
	if _, err := m.ReadRecords(ctx, 17, 1); err != nil {
		t.Errorf("record 17, listed by the go.sum file and not excluded: %v", err)
	}
	if res.Missing != 0 {
		t.Errorf("the round counted %d versions missing, want none: the excluded one is not looked up", res.Missing)
	}
	// golang.org/x/mod3 matches golang.org/x/* but is excluded; mod13 is kept.
	if _, err := m.ReadRecords(ctx, 3, 1); err == nil {
		t.Errorf("record 3, golang.org/x/mod3, excluded, was kept")
	}
	if _, err := m.ReadRecords(ctx, 13, 1); err != nil {
		t.Errorf("record 13, golang.org/x/mod13, matching golang.org/x/*: %v", err)
	}
}
