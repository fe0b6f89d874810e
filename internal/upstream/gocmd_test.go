package upstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestGoCommandAgrees runs the real go command with sumd as its GOSUMDB and
// the upstream proxy as its GOPROXY: every version is unknown to sumd, so
// each download makes sumd fetch, hash and record it, and the go command
// accepts the answer only if sumd's hashes are the ones it computes itself.
// The go.sum lines it reports must be sumd's records, byte for byte.
func TestGoCommandAgrees(t *testing.T) {
	g := testproxy.NewGo(t)
	mods := []testproxy.Module{
		goodModule("example.com/m", "v1.2.3"),
		goodModule("example.com/Upper/m/v2", "v2.0.0-rc.1"),
		{Path: "example.com/old", Version: "v2.0.0+incompatible", Files: map[string]string{"old.go": "package old\n"}},
	}
	p := newProxy(t, mods...)
	l := testLog(t)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{})})
	srv := httptest.NewServer(server.New(l.Name(), rec, server.Options{Logger: quiet}))
	t.Cleanup(srv.Close)
	g.Env = append(g.Env, "GOPROXY="+p.url, "GOSUMDB="+l.VerifierKey()+" "+srv.URL)

	args := []string{"mod", "download", "-json"}
	for _, m := range mods {
		args = append(args, m.Path+"@"+m.Version)
	}
	out, err := g.Run(args...)
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var d struct{ Path, Version, Sum, GoModSum, Error string }
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go mod download output: %v\n%s", err, out)
		}
		id, err := l.Lookup(context.Background(), mv(d.Path, d.Version))
		if err != nil {
			t.Fatalf("%s@%s was not recorded: %v", d.Path, d.Version, err)
		}
		texts, _ := l.ReadRecords(context.Background(), id, 1)
		want := d.Path + " " + d.Version + " " + d.Sum + "\n" + d.Path + " " + d.Version + "/go.mod " + d.GoModSum + "\n"
		if string(texts[0]) != want {
			t.Errorf("record %q, want the go command's go.sum lines %q", texts[0], want)
		}
	}
	if n := treeSize(t, l); n != int64(len(mods)) {
		t.Errorf("tree size %d, want %d", n, len(mods))
	}
}
