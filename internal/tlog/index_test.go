package tlog

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

func TestScanIndex(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "scan.example.com"), VerifyTail)
	defer l.Close()
	rec := func(path, version string) gosum.Record {
		return gosum.Record{Path: path, Version: version, Hash: fakeHash(path + version), GoMod: fakeHash(path + version + "/go.mod")}
	}
	// Added in an order unlike the index's.
	recs := []gosum.Record{
		rec("example.com/m", "v1.10.0"), rec("example.com/m2", "v0.1.0"), rec("example.com/m/v2", "v2.0.0"),
		rec("example.com/m", "v1.2.0"), rec("example.org/x", "v1.0.0"),
	}
	ids, err := l.Add(ctx, recs...)
	if err != nil {
		t.Fatal(err)
	}
	keys := func(es []IndexEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Path+"@"+e.Version)
		}
		return out
	}
	for _, tc := range []struct {
		from  string
		limit int
		want  []string
	}{
		{"", 100, []string{"example.com/m/v2@v2.0.0", "example.com/m2@v0.1.0", "example.com/m@v1.10.0", "example.com/m@v1.2.0", "example.org/x@v1.0.0"}},
		{"example.com/m@", 100, []string{"example.com/m@v1.10.0", "example.com/m@v1.2.0", "example.org/x@v1.0.0"}},
		{"example.com/m@", 1, []string{"example.com/m@v1.10.0"}},
		{"example.com/m@\xff", 100, []string{"example.org/x@v1.0.0"}},
		{"example.org/y", 100, nil},
		{"", 0, nil},
	} {
		got, cut, err := l.ScanIndex(ctx, tc.from, tc.limit)
		if err != nil || cut {
			t.Fatalf("ScanIndex(%q, %d): cut %v, %v", tc.from, tc.limit, cut, err)
		}
		if !slices.Equal(keys(got), tc.want) {
			t.Errorf("ScanIndex(%q, %d) = %q, want %q", tc.from, tc.limit, keys(got), tc.want)
		}
	}
	got, _, _ := l.ScanIndex(ctx, "example.org/x@", 1)
	if len(got) != 1 || got[0].ID != ids[4] {
		t.Errorf("ScanIndex(example.org/x@) = %+v, want id %d", got, ids[4])
	}
	for _, tc := range []struct {
		before string
		limit  int
		want   []string
	}{
		{"\xff", 100, []string{"example.org/x@v1.0.0", "example.com/m@v1.2.0", "example.com/m@v1.10.0", "example.com/m2@v0.1.0", "example.com/m/v2@v2.0.0"}},
		{"example.com/m@\xff", 2, []string{"example.com/m@v1.2.0", "example.com/m@v1.10.0"}},
		{"example.com/m@v1.2.0", 100, []string{"example.com/m@v1.10.0", "example.com/m2@v0.1.0", "example.com/m/v2@v2.0.0"}},
		{"example.com/m/v2@v2.0.0", 100, nil},
		{"\xff", 0, nil},
	} {
		got, cut, err := l.ScanIndexBack(ctx, tc.before, tc.limit)
		if err != nil || cut {
			t.Fatalf("ScanIndexBack(%q, %d): cut %v, %v", tc.before, tc.limit, cut, err)
		}
		if !slices.Equal(keys(got), tc.want) {
			t.Errorf("ScanIndexBack(%q, %d) = %q, want %q", tc.before, tc.limit, keys(got), tc.want)
		}
	}
}
