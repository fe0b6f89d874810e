package oci

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testnet"
)

func says(s string) func(error) bool {
	return func(err error) bool { return strings.Contains(err.Error(), s) }
}

// pager answers a listing with pages of n entries named by entry, each
// linking to the next, for ever, and counts them.
type pager struct {
	pages atomic.Int64
	n     int
}

func (p *pager) serve(w http.ResponseWriter, r *http.Request, field string, entry func(i int64) string) {
	page := p.pages.Add(1)
	var b strings.Builder
	fmt.Fprintf(&b, `{"name":"n",%q:[`, field)
	for i := range p.n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q", entry(page*int64(p.n)+int64(i)))
	}
	b.WriteString("]}")
	w.Header().Set("Link", fmt.Sprintf(`<%s?last=%d&n=%d>; rel="next"`, r.URL.Path, page, p.n))
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(b.String()))
}

// TestSyncEndlessTagPages: Link: rel="next" paging that never ends fails
// its repository at MaxTags tags, or at maxListPages empty pages.
func TestSyncEndlessTagPages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		want   string
		maxReq int64
	}{
		{"tags", 1000, fmt.Sprintf("more than %d tags", MaxTags), MaxTags/1000 + 1},
		{"empty pages", 0, fmt.Sprintf("more than %d pages", maxListPages), maxListPages},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSyncEnv(t, true)
			// 10,000 pages take more than the usual 2s on a loaded
			// machine: the bound tested is the count.
			e.listTimeout = time.Minute
			victim := withVictim(t, e)
			p := &pager{n: tc.n}
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != victim+"tags/list" {
					return false
				}
				p.serve(w, r, "tags", func(i int64) string { return fmt.Sprintf("t%d", i) })
				return true
			})
			r := e.hostileSync(t)
			wantFailure(t, e, r, 1, says(tc.want))
			if got := p.pages.Load(); got > tc.maxReq {
				t.Errorf("%d pages requested, want at most %d", got, tc.maxReq)
			}
		})
	}
}

// TestSyncEndlessCatalogPages: the same for the catalog, at
// MaxRepositories.
func TestSyncEndlessCatalogPages(t *testing.T) {
	e := newSyncEnv(t, true)
	e.listTimeout = time.Minute // the bound tested is the count
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	p := &pager{n: 1000}
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/_catalog" {
			return false
		}
		p.serve(w, r, "repositories", func(i int64) string { return fmt.Sprintf("gomod/r%d", i) })
		return true
	})
	wantFailure(t, e, e.hostileSync(t), 0, says(fmt.Sprintf("more than %d repositories", MaxRepositories)))
	if got := p.pages.Load(); got > MaxRepositories/1000+1 {
		t.Errorf("%d pages requested, want at most %d", got, MaxRepositories/1000+1)
	}
}

// TestSyncRegistryNeverAnswers: a registry that never answers fails its
// source or repository within the listing timeout, and the pass goes on
// to the others.
func TestSyncRegistryNeverAnswers(t *testing.T) {
	t.Run("registry", func(t *testing.T) {
		e := newSyncEnv(t, true)
		e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
		hung, err := parseSource(silent(t) + "/gomod")
		if err != nil {
			t.Fatal(err)
		}
		wantFailure(t, e, e.hostileSync(t, hung, e.src), 1, says(hung.Registry.Name()))
	})
	t.Run("tag list", func(t *testing.T) {
		e := newSyncEnv(t, true)
		victim := withVictim(t, e)
		e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != victim+"tags/list" {
				return false
			}
			// Headers at once, then a body that never ends.
			w.Write([]byte(`{"name":"n","tags":[`))
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
			return true
		})
		wantFailure(t, e, e.hostileSync(t), 1, says("gave up listing after"))
	})
}

// TestSyncArtifactTimeout: an artifact whose layers do not arrive within
// Timeout fails with an error naming that bound, as a listing does, so
// that an operator can tell it from the registry's own timeout; the pass
// goes on to the next repository.
func TestSyncArtifactTimeout(t *testing.T) {
	e := newSyncEnv(t, true)
	victim := withVictim(t, e)
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, victim+"blobs/") {
			return false
		}
		// Headers at once, then a body that never comes.
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		return true
	})
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
		Remote: testRemote, Timeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantFailure(t, e, r, 1, says("gave up on the artifact after 1s"))
}

// TestSyncRegistryDown: a registry that cannot be reached (no connection,
// or no answer) fails its source once per pass, saying how many of its
// repositories were not read, instead of failing each one in turn (and,
// for one that never answers, holding the pass for the listing timeout of
// each); the other sources are still read.
func TestSyncRegistryDown(t *testing.T) {
	for name, host := range map[string]func(t *testing.T) string{"refused": func(t *testing.T) string { return testnet.RefusingAddr(t) }, "no answer": silent} {
		t.Run(name, func(t *testing.T) {
			e := newSyncEnv(t, true)
			e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			h := host(t)
			down, err := ParseSources([]string{h + "/gomod"},
				[]string{h + "/gomod/example.com/a", h + "/gomod/example.com/b", h + "/gomod/example.com/c"})
			if err != nil {
				t.Fatal(err)
			}
			wantFailure(t, e, e.hostileSync(t, down[0], e.src), 1, says("the 2 other repositories of "+down[0].String()+" were not read"))
		})
	}
}

// TestSyncTokenRefusedForOneRepository: a token service refusing the scope
// of one repository fails that repository alone; the others of the source
// are still read.
func TestSyncTokenRefusedForOneRepository(t *testing.T) {
	for _, code := range []int{http.StatusForbidden, http.StatusBadRequest} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			e := newSyncEnv(t, true)
			e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				switch {
				case r.URL.Path == "/v2/" && r.Header.Get("Authorization") == "":
					w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
					w.WriteHeader(http.StatusUnauthorized)
				case r.URL.Path == "/token" && strings.Contains(r.URL.Query().Get("scope"), "example.com/a"):
					w.WriteHeader(code)
				case r.URL.Path == "/token":
					w.Write([]byte(`{"token":"t"}`))
				default:
					return false
				}
				return true
			})
			sources, err := ParseSources([]string{e.reg.host + "/gomod"},
				[]string{e.reg.host + "/gomod/example.com/a", e.reg.host + "/gomod/example.com/m"})
			if err != nil {
				t.Fatal(err)
			}
			wantFailure(t, e, e.hostileSync(t, sources...), 1, says("example.com/a"))
		})
	}
}

// TestSyncRegistryDownMidPass: a registry that stops answering once its
// tags are listed (each HEAD's connection closed, or never answered) fails
// its source once, the failure saying what was not read, instead of each
// of its tags in turn, each after remote's retries or the artifact's
// timeout.
func TestSyncRegistryDownMidPass(t *testing.T) {
	for name, hang := range map[string]func(w http.ResponseWriter, r *http.Request){
		"closed": func(w http.ResponseWriter, r *http.Request) {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		},
		"no answer": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	} {
		t.Run(name, func(t *testing.T) {
			e := newSyncEnv(t, true)
			for _, v := range []string{"v1.0.0", "v1.0.1", "v1.0.2"} {
				e.push(t, simpleModule(t, v), e.key.sv)
			}
			n := module.Version{Path: "example.com/n", Version: "v1.0.0"}
			e.push(t, testModule(t, n, map[string]string{"go.mod": "module example.com/n\n"}), e.key.sv)
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodHead {
					return false
				}
				hang(w, r)
				return true
			})
			r := e.hostileSync(t)
			if len(r.Failures) != 1 || !says("the tags of "+e.reg.host+"/gomod/example.com/m after it and the 1 other repository of "+e.src.String()+" were not read")(r.Failures[0]) {
				t.Errorf("report %+v (failures %v), want one failure saying what was not read\n%s", r, r.Failures, e.logs)
			}
		})
	}
}

// TestSyncHeadAnsweredWrongly: a registry answering a tag's HEAD, if
// wrongly (no Docker-Content-Digest), fails that artifact alone: it
// answers, so the other tags and repositories are still read.
func TestSyncHeadAnsweredWrongly(t *testing.T) {
	e := newSyncEnv(t, true)
	withVictim(t, e)
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		// m, read before n
		if r.Method != http.MethodHead || !strings.HasPrefix(r.URL.Path, "/v2/gomod/example.com/m/") {
			return false
		}
		w.Header().Set("Content-Type", manifestType)
		w.Header().Set("Content-Length", "100")
		return true
	})
	wantFailure(t, e, e.hostileSync(t), 1, says("Docker-Content-Digest"))
}

// TestSyncCatalogHint: a catalog the registry refuses (404, as registries
// without /v2/_catalog answer) says to name the repositories with
// -repository; a registry that cannot be reached does not, since naming
// them would not help.
func TestSyncCatalogHint(t *testing.T) {
	const hint = "name them with -repository"
	e := newSyncEnv(t, true)
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/_catalog" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"UNSUPPORTED","message":"catalog not supported"}]}`))
		return true
	})
	down, err := parseSource(testnet.RefusingAddr(t) + "/gomod")
	if err != nil {
		t.Fatal(err)
	}
	r := e.hostileSync(t, e.src, down)
	if len(r.Failures) != 2 || !says(hint)(r.Failures[0]) || says(hint)(r.Failures[1]) || !says("failed to reach "+down.Registry.Name())(r.Failures[1]) {
		t.Errorf("failures %v, want the refused catalog's to say %q and the unreachable registry's not", r.Failures, hint)
	}
}
