package access

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/sumd-project/sumd/internal/testlog"
)

const testDB = "sum.access.example"

// Test credentials: bcrypt at its lowest cost, to keep tests fast.
const (
	readerPass  = "reader-password"
	auditorPass = "auditor-password"
	adminPass   = "admin-password"
	teamPass    = "team-password"
	readerToken = "reader-token-0123456789"
	adminToken  = "admin-token-0123456789abcdef"
)

func bcryptOf(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// htpasswd is a basic credential file with a user of each role and a
// reader limited to example.com/team/*.
func htpasswd(t testing.TB) string {
	return "# users\n" +
		"reader:" + bcryptOf(t, readerPass) + "\n" +
		"auditor:" + bcryptOf(t, auditorPass) + ":auditor\n" +
		"boss:" + bcryptOf(t, adminPass) + ":admin\n" +
		"team:" + bcryptOf(t, teamPass) + ":reader:example.com/team/*,example.com/shared\n"
}

// writeSecret writes a file readable by its owner only.
func writeSecret(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A target is the handler behind the layer: it counts the requests that
// reach it and answers 200 with the principal's name.
type target struct {
	calls atomic.Int32
	last  atomic.Pointer[Principal]
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tg.calls.Add(1)
	p, _ := FromContext(r.Context())
	tg.last.Store(p)
	name := "<none>"
	if p != nil {
		name = p.Name
	}
	io.WriteString(w, "ok "+name+"\n")
}

// setup is a layer in front of a target.
type setup struct {
	layer *Layer
	tg    *target
	h     http.Handler
	reg   *prometheus.Registry
	logs  *testlog.Buffer
}

func init() {
	recheck = 0 // tests change files and expect the next request to see it
}

func newSetup(t testing.TB, cfg Config) *setup {
	t.Helper()
	s := &setup{tg: new(target), reg: prometheus.NewRegistry(), logs: new(testlog.Buffer)}
	if cfg.Databases == nil {
		cfg.Databases = []string{testDB}
	}
	cfg.Registry, cfg.Logger = s.reg, s.logs.Logger()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.layer, s.h = l, l.Wrap(s.tg)
	return s
}

// do serves one request; auth is an Authorization header value or "".
func (s *setup) do(method, path, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// want checks a response's status and that its body contains text.
func want(t testing.TB, what string, w *httptest.ResponseRecorder, status int, text string) {
	t.Helper()
	if w.Code != status || !strings.Contains(w.Body.String(), text) {
		t.Errorf("%s: %d %q, want %d containing %q", what, w.Code, w.Body.String(), status, text)
	}
}

func counter(t testing.TB, c *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}
