package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/tlog"
)

// offlineMirror returns a Mirror of an origin called name that holds no
// head yet and has no origin URL.
func offlineMirror(t *testing.T, name string) Mirror {
	_, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return Mirror{Interval: time.Hour, Open: func() (*mirror.Follower, string, error) {
		l, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{VerifierKeys: []string{vkey}, Create: true})
		if err != nil {
			return nil, "", err
		}
		vs, _ := sumdbclient.ParseVerifiers(vkey)
		f, err := mirror.New(mirror.Options{Log: l, Verifiers: vs})
		return f, "", err
	}}
}

// headedMirror is offlineMirror holding its origin's first signed head (of
// an empty tree), so that it answers /latest and /supported.
func headedMirror(t *testing.T, name string) Mirror {
	return mirrorFollowing(t, name, nil)
}

// mirrorFollowing is headedMirror following its origin through c (nil:
// none).
func mirrorFollowing(t *testing.T, name string, c *sumdbclient.Client) Mirror {
	skey, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	origin, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	head, err := origin.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return Mirror{Interval: time.Hour, Open: func() (*mirror.Follower, string, error) {
		l, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{VerifierKeys: []string{vkey}, Create: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, "", err
		}
		if err := l.Extend(context.Background(), tlog.Extension{Head: head}); err != nil {
			return nil, "", err
		}
		vs, _ := sumdbclient.ParseVerifiers(vkey)
		f, err := mirror.New(mirror.Options{Log: l, Client: c, Verifiers: vs})
		return f, "", err
	}}
}

// TestMirrorRoutes serves a log and two mirrors whose names nest
// (corp.example and corp.example/sub): each gets its own requests under
// /sumdb/<name>/, the rest go to the server's own log, and the status lists
// both mirrors. A mirror with no head yet answers /supported with a 404, so
// that a go command probing GOPROXY tries its next proxy instead of sending
// every lookup to a mirror that cannot answer. A mirror-only server serves
// its first mirror at the root.
func TestMirrorRoutes(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	cfg.Mirrors = []Mirror{offlineMirror(t, "corp.example"), offlineMirror(t, "corp.example/sub")}
	ctx, cancel := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)
	for path, want := range map[string]string{
		"/sumdb/corp.example/supported":      "404 not supported here yet: the mirror of corp.example holds no signed tree head yet",
		"/sumdb/serve.example.com/supported": "200 ",
		"/sumdb/corp.example/latest":         "503 the mirror of corp.example holds no signed tree head yet",
		"/sumdb/corp.example/sub/latest":     "503 the mirror of corp.example/sub holds no signed tree head yet",
		"/sumdb/serve.example.com/latest":    "200 go.sum database tree",
		"/sumdb/other.example/supported":     "404 not found: this checksum database is serve.example.com",
		"/latest":                            "200 go.sum database tree",
	} {
		if got := getText(t, url+path); !strings.HasPrefix(got, want) {
			t.Errorf("GET %s = %q, want %q", path, got, want)
		}
	}
	var st Status
	if err := json.Unmarshal([]byte(strings.TrimPrefix(getText(t, url+"/status"), "200 ")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Mirrors) != 2 || st.Mirrors[0].Name != "corp.example" || st.Mirrors[1].Online {
		t.Errorf("status mirrors %+v", st.Mirrors)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}

	cfg, urls, _ = testConfig(t)
	cfg.OpenLog, cfg.DBFile = nil, ""
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return nil, nil, nil }
	cfg.Mirrors = []Mirror{offlineMirror(t, "corp.example")}
	ctx, cancel = context.WithCancel(context.Background())
	url, done = start(t, ctx, cfg, urls)
	if got := getText(t, url+"/latest"); !strings.HasPrefix(got, "503 the mirror of corp.example holds no signed tree head yet") {
		t.Errorf("a mirror-only server's /latest = %q", got)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestPrivateMirror: a mirror that reads its origin with credentials is
// refused unless every client of the server must authenticate (it would
// hand anyone the origin's private data, and forward anyone's lookups with
// the credentials); the read listener counts as anonymous, since it serves
// without the access layer. The refusal names the mirror and its
// credentials' file, and comes before the server's own log is opened, or
// created. Behind authentication, the mirror is served.
func TestPrivateMirror(t *testing.T) {
	private := func(t *testing.T) Mirror {
		m := headedMirror(t, "corp.example")
		open := m.Open
		m.Open = func() (*mirror.Follower, string, error) {
			f, _, err := open()
			return f, "bearer:/etc/sumd/corp.token", err
		}
		return m
	}
	for name, readListen := range map[string]string{"anonymous": "", "read listener": "127.0.0.1:0"} {
		t.Run(name, func(t *testing.T) {
			cfg, _, _, _ := accessConfig(t)
			if readListen != "" {
				cfg.ReadListen = readListen
			} else {
				cfg.Access = access.Config{}
			}
			opened := false
			openLog := cfg.OpenLog
			cfg.OpenLog = func() (*tlog.Log, error) { opened = true; return openLog() }
			cfg.Mirrors = []Mirror{private(t)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg.Ready = func(*tlog.Log, string) { cancel() } // served: Run returns nil
			err := Run(ctx, cfg)
			var hinted interface{ Hint() string }
			switch {
			case err == nil:
				t.Fatal("Run served a mirror read with credentials to anonymous clients")
			case !strings.Contains(err.Error(), "the mirror of corp.example reads its origin with credentials (bearer:/etc/sumd/corp.token)"):
				t.Errorf("the refusal does not name the mirror and its credentials: %v", err)
			case !errors.As(err, &hinted) || !strings.Contains(hinted.Hint(), "-read-auth"):
				t.Errorf("the refusal's hint does not say -read-auth: %v", err)
			}
			if opened {
				t.Error("the server's own log was opened before the refusal")
			}
		})
	}

	cfg, urls, _, _ := accessConfig(t)
	cfg.Mirrors = []Mirror{private(t)}
	ctx, cancel := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)
	for user, want := range map[string]int{"": http.StatusUnauthorized, "auditor": http.StatusOK} {
		if code, _, body := get(t, url+"/sumdb/corp.example/latest", user); code != want {
			t.Errorf("GET /sumdb/corp.example/latest as %q = %d %q, want %d", user, code, body, want)
		}
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

// getText returns "<status> <body>".
func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Fields(resp.Status)[0] + " " + string(body)
}

// TestMirrorUnreadableGoSumLogged: a partial mirror whose -modules go.sum
// files could not be read followed its origin all the same, but sumd serve
// logged its round as "a mirror could not follow its origin" followed by
// an error saying it did follow. The line now says it followed its origin
// and could not read its go.sum files.
func TestMirrorUnreadableGoSumLogged(t *testing.T) {
	const name = "corp.example"
	skey, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	quiet := tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)}
	origin, err := tlog.OpenStore(tlog.NewMemStore(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	head, err := origin.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/latest" {
			http.NotFound(w, r)
			return
		}
		w.Write(head)
	}))
	defer srv.Close()
	c, err := sumdbclient.New(srv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{VerifierKeys: []string{vkey}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Extend(context.Background(), tlog.Extension{Head: head}); err != nil {
		t.Fatal(err)
	}
	sel, err := mirror.ParseSelection([]string{filepath.Join(t.TempDir(), "gone", "go.sum")})
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := sumdbclient.ParseVerifiers(vkey)
	f, err := mirror.New(mirror.Options{Log: l, Client: c, Verifiers: vs, Select: sel})
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	syncOnce(context.Background(), f, slog.New(slog.NewTextHandler(&logged, nil)))
	got := logged.String()
	if !strings.Contains(got, "go.sum") || strings.Contains(got, "could not follow") || !strings.Contains(got, "followed its origin") {
		t.Errorf("a round that followed its origin but read no go.sum file logged\n%s\nwant a line saying it followed and could not read the go.sum files", got)
	}
}

// TestMirrorProblems: a mirror's own problems (cmd/sumd's: its client
// certificate expiring) are problems of that mirror in the status, and
// degrade the server's health as the server certificate's do.
func TestMirrorProblems(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	m := offlineMirror(t, "corp.example")
	m.Problems = func() []string { return []string{"the client certificate expired"} }
	cfg.Mirrors = []Mirror{m}
	ctx, cancel := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)
	var st Status
	if err := json.Unmarshal([]byte(strings.TrimPrefix(getText(t, url+"/status"), "200 ")), &st); err != nil {
		t.Fatal(err)
	}
	want := Problem{Part: "mirror corp.example", Message: "the client certificate expired"}
	if st.Health.State != Degraded || !slices.Contains(st.Health.Problems, want) {
		t.Errorf("status health %+v, want degraded with %+v", st.Health, want)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorClientCertExpiry: a mirror presenting a client certificate
// to its origin exports its expiry, as the server's own certificate is,
// for an alert to warn before the origin refuses it; one presenting none
// exports nothing.
func TestMirrorClientCertExpiry(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	m := offlineMirror(t, "corp.example")
	m.ClientCertExpiry = func() time.Time { return time.Unix(1900000000, 0) }
	cfg.Mirrors = []Mirror{m, offlineMirror(t, "other.example")}
	ctx, cancel := context.WithCancel(context.Background())
	_, done := start(t, ctx, cfg, urls)
	want := `
# HELP sumd_mirror_client_certificate_expiry_timestamp_seconds When the client certificate the mirror presents to its origin expires (Unix time); its files are read again when they change.
# TYPE sumd_mirror_client_certificate_expiry_timestamp_seconds gauge
sumd_mirror_client_certificate_expiry_timestamp_seconds{origin="corp.example"} 1.9e+09
`
	if err := testutil.GatherAndCompare(cfg.Registry, strings.NewReader(want), "sumd_mirror_client_certificate_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}
