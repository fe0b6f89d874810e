package access

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sumd-project/sumd/internal/secret"
	"github.com/sumd-project/sumd/internal/testenv"
)

// TestBasicCache: bcrypt runs once per user and password; a changed
// password in the file, or a removed user, takes effect at the next
// request although the old pair was remembered.
func TestBasicCache(t *testing.T) {
	dir := t.TempDir()
	file := writeSecret(t, dir, "htpasswd", htpasswd(t))
	s := newSetup(t, Config{Mode: ModeBasic, File: file})
	checks := func(result string) float64 { return counter(t, s.layer.metrics.checks, result) }
	for range 5 {
		want(t, "reader", s.do("GET", "/tile/8/0/000", basicAuth("reader", readerPass)), 200, "ok reader")
	}
	if v, c := checks("verified"), checks("cached"); v != 1 || c != 4 {
		t.Fatalf("5 requests: %v bcrypt checks and %v cached, want 1 and 4", v, c)
	}
	want(t, "wrong password", s.do("GET", "/latest", basicAuth("reader", "x")), 401, "wrong")
	want(t, "wrong password again", s.do("GET", "/latest", basicAuth("reader", "x")), 401, "wrong")
	if w := checks("wrong"); w != 2 {
		t.Errorf("wrong passwords checked with bcrypt %v times, want 2 (failures are never remembered)", w)
	}

	// A new password for reader: the old one stops working at once.
	replace(t, file, "reader:"+bcryptOf(t, "new-password")+"\n"+"auditor:"+bcryptOf(t, auditorPass)+":auditor\n")
	want(t, "old password after the change", s.do("GET", "/latest", basicAuth("reader", readerPass)), 401, "wrong")
	want(t, "new password", s.do("GET", "/latest", basicAuth("reader", "new-password")), 200, "ok reader")
	// The role comes from the file as it is now, not from the cache.
	want(t, "auditor", s.do("GET", "/tile/8/data/000", basicAuth("auditor", auditorPass)), 200, "ok auditor")
	replace(t, file, "auditor:"+strings.Split(mustRead(t, file), "auditor:")[1])
	want(t, "removed user", s.do("GET", "/latest", basicAuth("reader", "new-password")), 401, "wrong")
}

// TestVerifiedCacheBound: the cache never grows past its bound, and its
// keys depend on every part of the triple.
func TestVerifiedCacheBound(t *testing.T) {
	c := newVerifiedCache(3)
	for i := range 10 {
		c.add(c.key("u", string(rune('a'+i)), "h"))
	}
	if len(c.m) != 3 {
		t.Errorf("cache holds %d entries, want at most 3", len(c.m))
	}
	k := c.key("ab", "c", "h")
	for _, other := range [][32]byte{c.key("a", "bc", "h"), c.key("ab", "c", "h2"), newVerifiedCache(3).key("ab", "c", "h")} {
		if other == k {
			t.Error("two different triples (or keys) share a digest")
		}
	}
}

// TestFileChanges: credentials are re-read when their file changes; a
// file others may read is refused whole until it is fixed, and the layer
// reports it for the status.
func TestFileChanges(t *testing.T) {
	dir := t.TempDir()
	file := writeSecret(t, dir, "tokens", "ci:"+readerToken+"\n")
	s := newSetup(t, Config{Mode: ModeBearer, File: file})
	want(t, "token", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")

	const rotated = "rotated-token-0123456789"
	replace(t, file, "ci:"+rotated+"\n")
	want(t, "old token", s.do("GET", "/latest", "Bearer "+readerToken), 401, "wrong")
	want(t, "rotated token", s.do("GET", "/latest", "Bearer "+rotated), 200, "ok ci")

	os.Chmod(file, 0o644)
	want(t, "world-readable file", s.do("GET", "/latest", "Bearer "+rotated), 401, "wrong")
	if p := s.layer.Problems(); len(p) != 1 || !strings.Contains(p[0], "the token file cannot be used") || strings.Contains(p[0], dir) {
		t.Errorf("Problems() = %q, want the token file, without its path", p)
	}
	var me *secret.ModeError
	if _, err := s.layer.bearer.cached(); !errors.As(err, &me) || !strings.Contains(me.Hint(), "chmod 600 "+file) {
		t.Errorf("error %v, want a ModeError with a chmod 600 hint", err)
	}
	os.Chmod(file, 0o600)
	want(t, "fixed file", s.do("GET", "/latest", "Bearer "+rotated), 200, "ok ci")
	if p := s.layer.Problems(); len(p) != 0 {
		t.Errorf("Problems() = %q after the fix", p)
	}
	if !strings.Contains(s.logs.String(), "credential file cannot be used") || !strings.Contains(s.logs.String(), "credential file usable again") {
		t.Errorf("the log does not tell the file turned bad and good again:\n%s", s.logs)
	}

	os.Remove(file)
	want(t, "removed file", s.do("GET", "/latest", "Bearer "+rotated), 401, "wrong")
	if _, err := New(Config{Mode: ModeBearer, File: writeSecret(t, dir, "open", "ci:"+readerToken+"\n"), Databases: []string{testDB}}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir+"/open", 0o640)
	if _, err := New(Config{Mode: ModeBearer, File: dir + "/open", Databases: []string{testDB}}); !errors.As(err, &me) {
		t.Errorf("New with a group-readable file: %v, want a ModeError", err)
	}
}

// TestHtpasswd: a file written by Apache's htpasswd -B works as is, with
// roles and patterns appended by hand.
func TestHtpasswd(t *testing.T) {
	htpasswd := testenv.LookPath(t, "htpasswd")
	dir := t.TempDir()
	file := dir + "/htpasswd"
	for i, u := range []struct{ user, pass string }{{"alice", "alice-pw"}, {"bob", "bob:pw with spaces"}} {
		args := []string{"-B", "-b", file, u.user, u.pass}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(htpasswd, args...).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v\n%s", err, out)
		}
	}
	os.Chmod(file, 0o600)
	content := mustRead(t, file)
	if !strings.Contains(content, "alice:$2y$") {
		t.Fatalf("htpasswd -B wrote %q, want a $2y$ bcrypt hash", content)
	}
	replace(t, file, strings.Replace(content, "\nbob:", ":auditor\nbob:", 1))
	s := newSetup(t, Config{Mode: ModeBasic, File: file})
	want(t, "alice", s.do("GET", "/tile/8/data/000", basicAuth("alice", "alice-pw")), 200, "ok alice")
	want(t, "bob, a reader", s.do("GET", "/latest", basicAuth("bob", "bob:pw with spaces")), 200, "ok bob")
	want(t, "bob on data", s.do("GET", "/tile/8/data/000", basicAuth("bob", "bob:pw with spaces")), 403, "auditor role")
}

// replace rewrites a file in place with a new modification time, as an
// editor does.
func replace(t *testing.T, file, content string) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// A later modification time: what an editor gives, so that the change
	// shows in the stat (a same-size rewrite whose stamps did not move is
	// seen by its content, TestRacyRewrite).
	os.Chtimes(file, time.Now(), fi.ModTime().Add(time.Second))
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestHalfWritten: a credential file caught half-written, a line cut after
// its secret or its last ':', gives no one more than the whole file would:
// an empty PATTERNS field is refused (it would be a reader of every
// module), and a re-read file without a final newline waits a poll
// (TestHalfWrittenRotation). Once the file is whole the new line works.
func TestHalfWritten(t *testing.T) {
	const teamToken = "team-token-0123456789"
	dir := t.TempDir()
	file := writeSecret(t, dir, "tokens", "ci:"+readerToken+"\n")
	s := newSetup(t, Config{Mode: ModeBearer, File: file})
	want(t, "ci", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")
	for _, cut := range []string{"team:" + teamToken + ":reader:", "team:" + teamToken} {
		replace(t, file, "ci:"+readerToken+"\n"+cut)
		if w := s.do("GET", "/lookup/example.com/secret@v1.0.0", "Bearer "+teamToken); w.Code != 401 {
			t.Errorf("team's lookup outside its patterns, the file cut at %q: %d %q, want 401", cut, w.Code, w.Body)
		}
	}
	replace(t, file, "ci:"+readerToken+"\nteam:"+teamToken+":reader:example.com/team/*\n")
	want(t, "team inside its patterns once the file is whole", s.do("GET", "/lookup/example.com/team/x@v1.0.0", "Bearer "+teamToken), 200, "ok team")
	want(t, "team outside its patterns once the file is whole", s.do("GET", "/lookup/example.com/secret@v1.0.0", "Bearer "+teamToken), 404, "")
	want(t, "ci once the file is whole", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")
}

// TestAdminTokenNoNewline: the admin token file holds a token, not lines:
// rotated to one without a final newline, the new token works.
func TestAdminTokenNoNewline(t *testing.T) {
	file := writeSecret(t, t.TempDir(), "admin", adminToken)
	s := newSetup(t, Config{AdminTokenFile: file, AdminAPI: true})
	want(t, "admin token", s.do("POST", "/admin/fetch", "Bearer "+adminToken), 200, "ok admin-token")
	const rotated = "rotated-admin-token-0123456789"
	replace(t, file, rotated)
	want(t, "rotated admin token", s.do("POST", "/admin/fetch", "Bearer "+rotated), 200, "ok admin-token")
}

// TestRotationNoNewline: a token file without a final newline, as
// kubectl create secret --from-literal or printf write it, works at start,
// and rotated in the same form the new token replaces the old one within
// a poll interval (recheck); it locked every client out until a restart.
func TestRotationNoNewline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer func(d time.Duration) { recheck = d }(recheck)
		recheck = time.Second // the server's: time is the bubble's
		file := writeSecret(t, t.TempDir(), "tokens", "ci:"+readerToken)
		s := newSetup(t, Config{Mode: ModeBearer, File: file})
		want(t, "token at start", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")

		const rotated = "rotated-token-0123456789"
		replace(t, file, "ci:"+rotated)
		time.Sleep(recheck)
		want(t, "old token, the rotation just seen", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")
		time.Sleep(recheck)
		want(t, "rotated token a poll later", s.do("GET", "/latest", "Bearer "+rotated), 200, "ok ci")
		want(t, "old token a poll later", s.do("GET", "/latest", "Bearer "+readerToken), 401, "wrong")
		if !strings.Contains(s.logs.String(), "no final newline") {
			t.Errorf("the log does not tell the rotation was deferred:\n%s", s.logs)
		}
	})
}

// TestHalfWrittenRotation: a credential file rewritten in place and caught
// at every poll with more of its last line, never with a final newline,
// lets no one read outside the patterns of the file before or after (a
// line cut after "reader" is a reader of every module), and locks no one
// out: the credentials read before stay in force until the file is whole.
func TestHalfWrittenRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer func(d time.Duration) { recheck = d }(recheck)
		recheck = time.Second
		const teamToken = "team-token-0123456789"
		file := writeSecret(t, t.TempDir(), "tokens", "ci:"+readerToken+"\nteam:"+teamToken+":reader:example.com/team/*\n")
		s := newSetup(t, Config{Mode: ModeBearer, File: file})
		check := func(when string, shared int) {
			t.Helper()
			want(t, "team inside its patterns, "+when, s.do("GET", "/lookup/example.com/team/x@v1.0.0", "Bearer "+teamToken), 200, "ok team")
			want(t, "team on example.com/shared, "+when, s.do("GET", "/lookup/example.com/shared@v1.0.0", "Bearer "+teamToken), shared, "")
			want(t, "team outside its patterns, "+when, s.do("GET", "/lookup/example.com/secret@v1.0.0", "Bearer "+teamToken), 404, "")
			want(t, "ci, "+when, s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")
		}
		check("at start", 404)
		// The writer truncates the file and writes team a new pattern,
		// slower than the polls but never stalled for a whole poll
		// interval: each poll sees a longer cut, one of them at "reader".
		whole := "ci:" + readerToken + "\nteam:" + teamToken + ":reader:example.com/team/*,example.com/shared\n"
		for _, n := range []int{len("ci:" + readerToken + "\nteam:" + teamToken), strings.Index(whole, ":example.com/team"), len(whole) - 3} {
			time.Sleep(recheck / 2)
			replace(t, file, whole[:n])
			check("the file just cut at "+strconv.Quote(whole[n-8:n]), 404)
			time.Sleep(recheck / 2) // a poll: the file is stat'ed and read
			check("the file cut at "+strconv.Quote(whole[n-8:n]), 404)
		}
		time.Sleep(recheck / 2)
		replace(t, file, whole)
		time.Sleep(recheck / 2)
		check("the file whole", 200)
	})
}

// TestEmptiedFile: a -read-auth file emptied while the server runs (or
// left with comments only) refuses every client, as one that cannot be
// read does, and is reported alike, for the status and in the log, as at
// start it is refused; refilled, it is usable again.
func TestEmptiedFile(t *testing.T) {
	for _, c := range []struct {
		mode    Mode
		content string
		auth    string
		what    string
	}{
		{ModeBasic, htpasswd(t), basicAuth("reader", readerPass), "the password file"},
		{ModeBearer, "ci:" + readerToken + "\n", "Bearer " + readerToken, "the token file"},
	} {
		for _, emptied := range []string{"", "# everyone revoked\n"} {
			dir := t.TempDir()
			file := writeSecret(t, dir, "creds", c.content)
			s := newSetup(t, Config{Mode: c.mode, File: file})
			want(t, string(c.mode), s.do("GET", "/latest", c.auth), 200, "ok ")
			replace(t, file, emptied)
			s.layer.Refresh()
			want(t, string(c.mode)+" emptied", s.do("GET", "/latest", c.auth), 401, "wrong")
			if p := s.layer.Problems(); len(p) != 1 || !strings.Contains(p[0], c.what+" cannot be used") {
				t.Errorf("%s file emptied to %q: Problems() = %q, want %s", c.mode, emptied, p, c.what)
			}
			if logs := s.logs.String(); !strings.Contains(logs, "credential file cannot be used") || !strings.Contains(logs, "holds no credentials") {
				t.Errorf("%s file emptied to %q: the log does not say so:\n%s", c.mode, emptied, logs)
			}
			replace(t, file, c.content)
			want(t, string(c.mode)+" refilled", s.do("GET", "/latest", c.auth), 200, "ok ")
			if p := s.layer.Problems(); len(p) != 0 {
				t.Errorf("%s file refilled: Problems() = %q", c.mode, p)
			}
		}
	}
}

// TestMissingFileHidesName: a credential file that is not there was
// reported by its name (stat NAME: no such file or directory), and the
// name is often the secret itself, pasted where its file belongs, so it
// went to the journal or the terminal; the error now names the option
// instead, and repeats no name.
func TestMissingFileHidesName(t *testing.T) {
	t.Chdir(t.TempDir())
	const token = "tS0GKR9q2mXc7LbYvWnE4a1Hd8JpQz"
	for option, cfg := range map[string]Config{
		"read-auth-file":   {Mode: ModeBearer, File: token},
		"admin-token-file": {AdminTokenFile: token, AdminAPI: true},
		"tls-client-roles": {CertFile: token},
	} {
		err := Check(cfg)
		if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), option) {
			t.Errorf("Check with a missing %s: %v, want an error naming the option and not the file", option, err)
		}
	}
}

// TestRacyRewrite: on a file system of coarse time stamps, a token file
// rewritten in place with content of the same length within the tick of
// its last read shows the same stat as then, and the revoked token stayed
// valid until the file's next change; the file's content is compared
// while its read is that close to its last write (secret.Changed).
func TestRacyRewrite(t *testing.T) {
	// The bubble's clock starts in 2000, before any file's stamp: every
	// read is racy, however slow the machine.
	synctest.Test(t, func(t *testing.T) {
		file := writeSecret(t, t.TempDir(), "tokens", "ci:"+readerToken+"\n")
		s := newSetup(t, Config{Mode: ModeBearer, File: file})
		want(t, "token", s.do("GET", "/latest", "Bearer "+readerToken), 200, "ok ci")

		coarse, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		defer func(f func(string) (fs.FileInfo, error)) { stat = f }(stat)
		stat = func(string) (fs.FileInfo, error) { return coarse, nil } // stamps that did not move
		const rotated = "rotate-token-9876543210"                       // readerToken's length
		if err := os.WriteFile(file, []byte("ci:"+rotated+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		want(t, "revoked token", s.do("GET", "/latest", "Bearer "+readerToken), 401, "wrong")
		want(t, "rotated token", s.do("GET", "/latest", "Bearer "+rotated), 200, "ok ci")
	})
}
