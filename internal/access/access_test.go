package access

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/server"
)

// TestClassify: each route needs the role of the package doc, at both
// roots, and tricky spellings never need less than the route they reach.
func TestClassify(t *testing.T) {
	l := &Layer{cfg: Config{Databases: []string{testDB, "sum.golang.org"}, AdminAPI: true}}
	for path, role := range map[string]Role{
		"/healthz":                                  RoleNone,
		"/latest":                                   Reader,
		"/lookup/example.com/m@v1.0.0":              Reader,
		"/tile/8/0/000":                             Reader,
		"/tile/8/1/000.p/5":                         Reader,
		"/tile/8/data/000":                          Auditor,
		"/tile/8/data/x001/234.p/7":                 Auditor,
		"/sumdb/" + testDB + "/supported":           Reader,
		"/sumdb/" + testDB + "/tile/8/0/001":        Reader,
		"/sumdb/" + testDB + "/tile/8/data/001":     Auditor,
		"/sumdb/sum.golang.org/tile/8/data/001":     Auditor,
		"/sumdb/sum.golang.org/lookup/a.b/c@v1.0.0": Reader,
		"/sumdb/other.example/tile/8/data/001":      Auditor, // unknown: fail closed
		"/sumdb/other.example/latest":               Reader,
		"/":                                         Auditor,
		"/status":                                   Auditor,
		"/module":                                   Auditor,
		"/record":                                   Auditor,
		"/metrics":                                  Auditor,
		"/admin/fetch":                              Admin,
		"/admin/anything":                           Admin,
		"/admin":                                    Admin,
		"/admin/../tile/8/data/000":                 Admin,
		"/tuf/1.root.json":                          Reader,
		"/example.com/m/@v/list":                    Reader,
		"/healthz/":                                 Reader,
		"/sumdb/" + testDB + "/healthz":             Reader,
		"/sumdb/" + testDB + "/status":              Reader, // the server's 404
		"/lookup/example.com/tile/8/data/x@v1.0.0":  Reader,
	} {
		if got := l.classify(path).role; got != role {
			t.Errorf("classify(%q) = %v, want %v", path, got, role)
		}
	}
	l.cfg.AdminAPI = false
	if got := l.classify("/admin/fetch").role; got != Reader {
		t.Errorf("without the admin API, /admin/fetch needs %v, want reader (the server's 404)", got)
	}
}

// TestModeNone: without authentication every client is an anonymous
// auditor, credentials it sends are ignored, and only /admin/ needs one:
// the admin token.
func TestModeNone(t *testing.T) {
	dir := t.TempDir()
	s := newSetup(t, Config{AdminTokenFile: writeSecret(t, dir, "admin", adminToken+"\n"), AdminAPI: true})
	for _, path := range []string{"/latest", "/tile/8/data/000", "/status", "/metrics"} {
		want(t, path, s.do("GET", path, ""), 200, "ok anonymous")
		want(t, path+" with stray credentials", s.do("GET", path, "Bearer wrong"), 200, "ok anonymous")
	}
	w := s.do("POST", "/admin/fetch", "")
	want(t, "admin without a token", w, 401, "credentials required: send an admin token")
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="sumd"` {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
	}
	want(t, "admin with a wrong token", s.do("POST", "/admin/fetch", "Bearer "+adminToken+"x"), 401, "wrong credentials")
	want(t, "admin with the token", s.do("POST", "/admin/fetch", "Bearer "+adminToken), 200, "ok admin-token")
	want(t, "admin token as a basic password", s.do("POST", "/admin/upload", basicAuth("ci", adminToken)), 200, "ok admin-token")
	if n := s.tg.calls.Load(); n != 10 {
		t.Errorf("%d requests reached the handler, want 10", n)
	}
	for _, c := range []struct {
		cred, route, outcome string
		n                    float64
	}{{"anonymous", "fetch", "401", 1}, {"invalid", "fetch", "401", 1}, {"admin-token", "fetch", "200", 1}, {"admin-token", "upload", "200", 1}} {
		if got := counter(t, s.layer.metrics.adminRequests, c.cred, c.route, c.outcome); got != c.n {
			t.Errorf("sumd_admin_requests_total{%s,%s,%s} = %v, want %v", c.cred, c.route, c.outcome, got, c.n)
		}
	}
}

// TestBasic: every bad-credential variant is refused with the documented
// status before the handler runs; each role reaches what it may.
func TestBasic(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t)), AdminAPI: true})
	refused := []struct {
		what, method, path, auth string
		status                   int
		text                     string
	}{
		{"no credentials", "GET", "/latest", "", 401, "credentials required: add this host to your .netrc"},
		{"no credentials, unknown path", "GET", "/example.com/m/@v/list", "", 401, "credentials required"},
		{"no credentials, other database", "GET", "/sumdb/other/supported", "", 401, "credentials required"},
		{"wrong password", "GET", "/latest", basicAuth("reader", "nope"), 401, "wrong credentials"},
		{"unknown user", "GET", "/latest", basicAuth("nobody", readerPass), 401, "wrong credentials"},
		{"malformed basic", "GET", "/latest", "Basic !!!", 401, "malformed basic credentials"},
		{"wrong scheme", "GET", "/latest", "Digest username=\"reader\"", 401, `unsupported authorization scheme "Digest"`},
		{"bearer in basic mode", "GET", "/latest", "Bearer " + readerPass, 401, "wrong credentials"},
		{"token in the query", "GET", "/latest?access_token=" + readerPass, "", 401, "credentials in the URL query are refused"},
		{"token in the query with credentials", "GET", "/latest?token=x", basicAuth("reader", readerPass), 401, "credentials in the URL query"},
		{"token in the query, a ; after it", "GET", "/latest?access_token=abc;", basicAuth("reader", readerPass), 401, "credentials in the URL query"},
		{"token in the query after a ;", "GET", "/latest?x=1;token=abc", basicAuth("reader", readerPass), 401, "credentials in the URL query"},
		{"token in the query, escaped", "GET", "/latest?a=1&%50assword=abc", basicAuth("reader", readerPass), 401, "credentials in the URL query"},
		{"token in the query, a malformed pair before it", "GET", "/latest?a=%zz&Token=abc", basicAuth("reader", readerPass), 401, "credentials in the URL query"},
		{"reader on a data tile", "GET", "/tile/8/data/000", basicAuth("reader", readerPass), 403, "data tiles need the auditor role; credential reader has the reader role"},
		{"reader on a data tile under /sumdb/", "GET", "/sumdb/" + testDB + "/tile/8/data/000.p/3", basicAuth("reader", readerPass), 403, "data tiles need the auditor role"},
		{"reader on the status", "GET", "/status", basicAuth("reader", readerPass), 403, "the status page needs the auditor role; credential reader has the reader role"},
		{"reader on the metrics", "GET", "/metrics", basicAuth("reader", readerPass), 403, "the metrics need the auditor role; credential reader has the reader role"},
		{"auditor on the admin API", "POST", "/admin/fetch", basicAuth("auditor", auditorPass), 403, "the admin API needs the admin role; credential auditor has the auditor role"},
		{"reader outside its patterns", "GET", "/lookup/example.com/other@v1.0.0", basicAuth("team", teamPass), 404, "not found: example.com/other@v1.0.0: no record in checksum database " + testDB},
		{"reader outside its patterns, a database not declared", "GET", "/sumdb/mirror.example/lookup/example.com/other@v1.0.0", basicAuth("team", teamPass), 404, "no record in checksum database mirror.example"},
	}
	for _, c := range refused {
		w := s.do(c.method, c.path, c.auth)
		want(t, c.what, w, c.status, c.text)
		if c.status == 401 && w.Header().Get("WWW-Authenticate") != `Basic realm="sumd", charset="UTF-8"` {
			t.Errorf("%s: WWW-Authenticate %q, want the Basic challenge", c.what, w.Header().Values("WWW-Authenticate"))
		}
	}
	if n := s.tg.calls.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the handler", n)
	}
	allowed := []struct{ what, method, path, auth, name string }{
		{"healthz without credentials", "GET", "/healthz", "", "<none>"},
		{"reader lookup", "GET", "/lookup/example.com/other@v1.0.0", basicAuth("reader", readerPass), "reader"},
		{"reader hash tile", "GET", "/tile/8/1/000", basicAuth("reader", readerPass), "reader"},
		{"reader probe", "GET", "/sumdb/" + testDB + "/supported", basicAuth("reader", readerPass), "reader"},
		{"team inside its patterns", "GET", "/lookup/example.com/team/x@v1.0.0", basicAuth("team", teamPass), "team"},
		{"team, shared", "GET", "/sumdb/" + testDB + "/lookup/example.com/shared@v1.2.3", basicAuth("team", teamPass), "team"},
		{"team, malformed lookup (the server's 400)", "GET", "/lookup/example.com/other@latest", basicAuth("team", teamPass), "team"},
		{"team hash tile", "GET", "/tile/8/0/000.p/1", basicAuth("team", teamPass), "team"},
		{"auditor data tile", "GET", "/tile/8/data/000", basicAuth("auditor", auditorPass), "auditor"},
		{"auditor status", "GET", "/status", basicAuth("auditor", auditorPass), "auditor"},
		{"admin", "POST", "/admin/fetch", basicAuth("boss", adminPass), "boss"},
		{"admin reads", "GET", "/tile/8/data/000", basicAuth("boss", adminPass), "boss"},
		{"unrelated query", "GET", "/latest?x=1", basicAuth("reader", readerPass), "reader"},
		{"unrelated query with a ;", "GET", "/latest?x=1;y=token", basicAuth("reader", readerPass), "reader"},
	}
	for _, c := range allowed {
		want(t, c.what, s.do(c.method, c.path, c.auth), 200, "ok "+c.name)
	}
	if got := counter(t, s.layer.metrics.denied, reasonRole); got != 5 {
		t.Errorf("sumd_access_denied_total{reason=role} = %v, want 5", got)
	}
}

// TestHiddenLookup: a lookup outside a reader's patterns is answered byte
// for byte as the server answers a version it does not hold.
func TestHiddenLookup(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
	m := module.Version{Path: "example.com/Secret", Version: "v1.0.0"}
	esc, _ := module.EscapePath(m.Path)
	for _, method := range []string{"GET", "HEAD"} {
		got := s.do(method, "/lookup/"+esc+"@v1.0.0", basicAuth("team", teamPass))
		wantRec := httptest.NewRecorder()
		server.WriteNoRecord(wantRec, testDB, m)
		if got.Code != 404 || got.Body.String() != wantRec.Body.String() || !equalHeaders(got.Header(), wantRec.Header()) {
			t.Errorf("%s: %d %v %q, want %d %v %q", method, got.Code, got.Header(), got.Body, wantRec.Code, wantRec.Header(), wantRec.Body)
		}
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if strings.Join(a[k], ",") != strings.Join(b[k], ",") {
			return false
		}
	}
	return true
}

// TestBearer: a named token as Bearer or as a basic password (what a
// .netrc sends); the admin token beside the token file.
func TestBearer(t *testing.T) {
	dir := t.TempDir()
	tokens := "ci:" + readerToken + "\nrelease:release-token-0123456789:admin\n"
	s := newSetup(t, Config{Mode: ModeBearer, File: writeSecret(t, dir, "tokens", tokens),
		AdminTokenFile: writeSecret(t, dir, "admin", adminToken), AdminAPI: true})
	want(t, "bearer", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")
	want(t, "token as basic password", s.do("GET", "/latest", basicAuth("anyone", readerToken)), 200, "ok ci")
	want(t, "wrong token", s.do("GET", "/latest", "Bearer "+readerToken+"x"), 401, "wrong credentials")
	want(t, "empty bearer", s.do("GET", "/latest", "Bearer "), 401, "wrong credentials")
	want(t, "reader token on admin", s.do("POST", "/admin/fetch", "Bearer "+readerToken), 403, "admin role")
	want(t, "admin token file", s.do("POST", "/admin/fetch", "Bearer "+adminToken), 200, "ok admin-token")
	want(t, "admin from the token file", s.do("POST", "/admin/fetch", "Bearer release-token-0123456789"), 200, "ok release")
	w := s.do("GET", "/latest", "")
	want(t, "no credentials", w, 401, "credentials required")
	if got := w.Header().Values("WWW-Authenticate"); strings.Join(got, "|") != `Basic realm="sumd", charset="UTF-8"|Bearer realm="sumd"` {
		t.Errorf("WWW-Authenticate = %q, want Basic and Bearer challenges", got)
	}
}

// TestNew refuses files that cannot be used, naming the line but never a
// secret.
func TestNew(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		mode    Mode
		content string
		want    string
	}{
		{ModeBasic, "", "holds no credentials"},
		{ModeBasic, "# only a comment\n", "holds no credentials"},
		{ModeBasic, "alice:{SHA}c2VjcmV0LXNoYTE=\n", "line 1: alice: not a bcrypt hash; create it with htpasswd -B"},
		{ModeBasic, "alice:$apr1$abc$def\n", "not a bcrypt hash"},
		{ModeBasic, "alice:" + bcryptOf(t, "pw") + ":root\n", "line 1: alice: field 3 is not a role: want reader, auditor or admin"},
		{ModeBasic, "alice:" + bcryptOf(t, "pw") + ":auditor:corp.example/*\n", "only a reader can be limited"},
		{ModeBasic, "alice:" + bcryptOf(t, "pw") + ":reader:corp.example/[\n", "alice: field 4 is not a list of module path patterns"},
		{ModeBasic, "alice:" + bcryptOf(t, "pw") + "\nalice:" + bcryptOf(t, "pw") + "\n", "line 2: alice is named twice"},
		{ModeBasic, "anonymous:" + bcryptOf(t, "pw") + "\n", "reserved"},
		{ModeBasic, "al ice:" + bcryptOf(t, "pw") + "\n", "use letters, digits"},
		{ModeBearer, "ci:short-token\n", "line 1: ci: the token is shorter than 16 bytes"},
		{ModeBearer, "a:" + readerToken + "\nb:" + readerToken + "\n", "line 2: b: the token is another credential's too"},
		{ModeBearer, "ci:" + readerToken + ":reader:\n", "ci: field 4 (module path patterns) is empty"},
		{ModeBearer, "ci\n", "want NAME:SECRET"},
		{ModeBearer, "ci:" + readerToken + ":reader:a:b\n", "want NAME:SECRET"},
	} {
		_, err := New(Config{Mode: c.mode, File: writeSecret(t, dir, "creds", c.content), Databases: []string{testDB}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s file %q: %v, want %q", c.mode, c.content, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "short-token") || strings.Contains(err.Error(), readerToken)) {
			t.Errorf("error %q shows a secret", err)
		}
	}
	if _, err := New(Config{Mode: "digest", Databases: []string{testDB}}); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := New(Config{Mode: ModeBasic, File: dir + "/missing", Databases: []string{testDB}}); err == nil {
		t.Error("missing file accepted")
	}
}

// TestAdminTokenUnusable: with the admin token as the only admin
// credential, an unusable token file switches the admin API off (404, as
// documented), rather than telling the holder of the right token that it
// is wrong; once the file is fixed, the token works again.
func TestAdminTokenUnusable(t *testing.T) {
	dir := t.TempDir()
	file := writeSecret(t, dir, "admin", adminToken+"\n")
	s := newSetup(t, Config{AdminTokenFile: file, AdminAPI: true})
	want(t, "admin with the token", s.do("POST", "/admin/fetch", "Bearer "+adminToken), 200, "ok admin-token")
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, auth := range []string{"Bearer " + adminToken, "Bearer wrong-token-wrong-token", basicAuth("ci", adminToken), ""} {
		want(t, "admin with "+auth+" while the token file is unusable", s.do("POST", "/admin/fetch", auth), 404, "the admin API is not enabled")
	}
	want(t, "/latest while the token file is unusable", s.do("GET", "/latest", ""), 200, "ok anonymous")
	os.Chmod(file, 0o600)
	want(t, "admin with the token once the file is fixed", s.do("POST", "/admin/fetch", "Bearer "+adminToken), 200, "ok admin-token")
}

// TestNewQuotesNoSecret: a token or hash holding ":" is split into
// fields, and what follows the name may be part of it: errors name the
// field, never its text, and the line is refused.
func TestNewQuotesNoSecret(t *testing.T) {
	dir := t.TempDir()
	for _, line := range []string{
		"ci:0123456789abcdef:S3KR1T-T41L-xyz",
		"ci:0123456789abcdef:reader:S3KR1T[T41L",
		"ci:0123456789abcdef:reader:S3KR1T T41L",
		"ci:0123456789abcdef:auditor:S3KR1T-T41L",
		"ci:0123456789abcdef:S3KR1T-T41L:x:y",
	} {
		_, err := New(Config{Mode: ModeBearer, File: writeSecret(t, dir, "tokens", line+"\n"), Databases: []string{testDB}})
		if err == nil {
			t.Errorf("%q accepted", line)
		} else if strings.Contains(err.Error(), "S3KR1T") || strings.Contains(err.Error(), "T41L") {
			t.Errorf("%q: error %q quotes a field after the name", line, err)
		}
	}
}

// TestHealthzWrongCredentialsCounted: /healthz answers everyone, but checks
// credentials sent to it (to tell an auditor more), so a wrong token there
// must be counted as a denial, or a flood of them at /healthz would leave
// nothing in sumd_access_denied_total. The answer stays the anonymous one.
// (A password there is checked only against the cache:
// TestHealthzChecksCachedOnly.)
func TestHealthzWrongCredentialsCounted(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBearer, File: writeSecret(t, t.TempDir(), "tokens", "auditor:"+readerToken+":auditor\n")})
	for range 3 {
		want(t, "healthz with a wrong token", s.do("GET", "/healthz", "Bearer wrong-token-0123456789"), 200, "ok <none>")
	}
	want(t, "healthz with the token", s.do("GET", "/healthz", "Bearer "+readerToken), 200, "ok auditor")
	want(t, "healthz without credentials", s.do("GET", "/healthz", ""), 200, "ok <none>")
	if got := counter(t, s.layer.metrics.denied, reasonWrong); got != 3 {
		t.Errorf("sumd_access_denied_total{reason=wrong_credentials} = %v, want 3", got)
	}
	if got := counter(t, s.layer.metrics.denied, reasonNoCredentials); got != 0 {
		t.Errorf("sumd_access_denied_total{reason=no_credentials} = %v, want 0 (a probe is no denial)", got)
	}
}

// TestHealthzChecksCachedOnly: /healthz answers everyone, and the only
// thing a password there changes is how much of a degraded server's
// problems it tells, so a password sent there must not run bcrypt, which
// takes a check from the budget the other routes share: only a password
// another route verified (remembered) is recognised there, and any other
// is answered as no credential and counted as unchecked, not as wrong,
// since nothing says it is.
func TestHealthzChecksCachedOnly(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
	var runs atomic.Int32
	s.layer.basic.compare = func(hash, password []byte) error {
		runs.Add(1)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	want(t, "healthz with a wrong password", s.do("GET", "/healthz", basicAuth("auditor", "nope")), 200, "ok <none>")
	want(t, "healthz as an unknown user", s.do("GET", "/healthz", basicAuth("nobody", "nope")), 200, "ok <none>")
	want(t, "healthz with a password not verified yet", s.do("GET", "/healthz", basicAuth("auditor", auditorPass)), 200, "ok <none>")
	if n := runs.Load(); n != 0 {
		t.Errorf("passwords at /healthz ran bcrypt %d times, want none", n)
	}
	want(t, "status", s.do("GET", "/status", basicAuth("auditor", auditorPass)), 200, "ok auditor")
	want(t, "healthz with a verified password", s.do("GET", "/healthz", basicAuth("auditor", auditorPass)), 200, "ok auditor")
	if n := runs.Load(); n != 1 {
		t.Errorf("bcrypt ran %d times, want once (for /status)", n)
	}
	if got := counter(t, s.layer.metrics.checks, "unchecked"); got != 3 {
		t.Errorf("sumd_access_basic_checks_total{result=unchecked} = %v, want 3", got)
	}
	if got := counter(t, s.layer.metrics.denied, reasonWrong); got != 0 {
		t.Errorf("sumd_access_denied_total{reason=wrong_credentials} = %v, want 0 (no password at /healthz was found wrong)", got)
	}
}

// TestNoCredentialsOverHTTP: the go command sends .netrc credentials over
// HTTPS only, so a client with an entry that reaches sumd at an http://
// URL is refused for want of credentials it has; the 401 tells a request
// that came over plain HTTP to use an https:// URL, and does not tell one
// over HTTPS (or through a proxy saying it took HTTPS) to.
func TestNoCredentialsOverHTTP(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
	for _, c := range []struct {
		what, url, proto string
		plain            bool
	}{
		{"plain HTTP", "http://sumd.example/latest", "", true},
		{"plain HTTP, proxy says http", "http://sumd.example/latest", "http", true},
		{"HTTPS", "https://sumd.example/latest", "", false},
		{"behind a TLS proxy", "http://sumd.example/latest", "https", false},
	} {
		r := httptest.NewRequest("GET", c.url, nil)
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		w := httptest.NewRecorder()
		s.h.ServeHTTP(w, r)
		want(t, c.what, w, 401, "credentials required: add this host to your .netrc")
		if got := strings.Contains(w.Body.String(), "https:// URL in GOSUMDB"); got != c.plain {
			t.Errorf("%s: %q, want the https:// hint %v", c.what, w.Body.String(), c.plain)
		}
	}
}
