package upstream

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testlog"
)

// TestCredentialsReachUpstream checks that each kind of credential reaches
// the proxy, is re-read at each request (rotation), and appears in no log
// or error.
func TestCredentialsReachUpstream(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const pass, token, netrcPass = "s3cret-pass", "s3cret-token", "s3cret-netrc"
	netrc := "machine other.example login eve password wrong\n" +
		"machine 127.0.0.1 login bob password " + netrcPass + "\n"
	tests := []struct {
		name   string
		auth   Auth
		file   string // the secret file, rewritten to test rotation
		secret string
		ok     func(r *http.Request) bool
	}{
		{"basic", Auth{Kind: AuthBasic, User: "alice", File: write("pass", pass+"\n")}, "pass", pass,
			func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "alice" && p == pass }},
		{"bearer", Auth{Kind: AuthBearer, File: write("token", token)}, "token", token,
			func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+token }},
		{"netrc", Auth{Kind: AuthNetrc, File: write("netrc", netrc)}, "netrc", netrcPass,
			func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "bob" && p == netrcPass }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, goodModule(m.Path, m.Version))
			p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if tt.ok(r) {
					return false
				}
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return true
			})
			var logs testlog.Buffer
			srcs := mustParseList(t, p.url)
			srcs[0].Auth = tt.auth
			f, err := NewFetcher(FetcherOptions{Sources: srcs, Logger: logs.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Fetch(context.Background(), m); err != nil {
				t.Fatalf("Fetch with %s credentials: %v", tt.name, err)
			}
			content, _ := os.ReadFile(tt.auth.File)
			write(tt.file, strings.ReplaceAll(string(content), tt.secret, "rotated"))
			_, err = f.Fetch(context.Background(), m)
			if e := asError(t, err); e.HTTPStatus() != 502 || !strings.Contains(e.Error(), "401 Unauthorized") {
				t.Errorf("Fetch after the secret changed: %v, want a 502 naming the upstream's 401", err)
			}
			if strings.Contains(logs.String(), tt.secret) || strings.Contains(err.Error(), "rotated") {
				t.Errorf("a secret leaked into the logs or the error:\n%s\n%v", logs.String(), err)
			}
			if !strings.Contains(logs.String(), "401") {
				t.Errorf("the failed attempt was not logged at debug:\n%s", logs.String())
			}
		})
	}
}

func TestParseAuth(t *testing.T) {
	t.Setenv("NETRC", "/etc/sumd/netrc")
	good := map[string]Auth{
		"":                       {},
		"none":                   {},
		"basic:alice:/run/pass":  {Kind: AuthBasic, User: "alice", File: "/run/pass"},
		"basic:alice:C:/x":       {Kind: AuthBasic, User: "alice", File: "C:/x"},
		"bearer:/run/token":      {Kind: AuthBearer, File: "/run/token"},
		"netrc:/home/sumd/netrc": {Kind: AuthNetrc, File: "/home/sumd/netrc"},
		"netrc":                  {Kind: AuthNetrc, File: "/etc/sumd/netrc"},
	}
	for s, want := range good {
		got, err := ParseAuth(s)
		if err != nil || got != want {
			t.Errorf("ParseAuth(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if s != "" && s != "netrc" && got.String() != s {
			t.Errorf("ParseAuth(%q).String() = %q", s, got.String())
		}
	}
	for _, s := range []string{"none:x", "basic", "basic:alice", "basic::f", "basic:alice:", "bearer", "bearer:", "token:/x", "Basic:a:b"} {
		if got, err := ParseAuth(s); err == nil {
			t.Errorf("ParseAuth(%q) = %+v, want an error", s, got)
		}
	}
}

// TestCredentialChecked makes a missing or empty secret stop NewFetcher.
func TestCredentialChecked(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	for _, a := range []Auth{
		{Kind: AuthBearer, File: filepath.Join(t.TempDir(), "missing")},
		{Kind: AuthBearer, File: empty},
		{Kind: AuthBasic, User: "a:b", File: empty},
		{Kind: "kerberos", File: empty},
	} {
		srcs := mustParseList(t, "https://proxy.example.com")
		srcs[0].Auth = a
		if _, err := NewFetcher(FetcherOptions{Sources: srcs, Logger: quiet}); err == nil {
			t.Errorf("NewFetcher with auth %v succeeded", a)
		}
	}
}

// TestEchoedCredentialsRedacted: a proxy that writes the credentials it
// was sent into its text answer (a debugging proxy echoing headers, "token
// ... may not read ...") had them passed on: a 404's reason to every
// client that looks the version up (a token is one plain word, which
// redactReason keeps), and any answer's reason to the logs through the
// error's cause. The credentials sent are cut out of the answer's text.
func TestEchoedCredentialsRedacted(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const pass, token, netrcPass = "s3cretPass77", "s3cret-token-0123456789", "s3cretNetrc42"
	for _, tc := range []struct {
		name    string
		auth    Auth
		secrets []string // what must not be passed on
	}{
		{"basic", Auth{Kind: AuthBasic, User: "alice", File: write("pass", pass+"\n")}, []string{pass, base64.StdEncoding.EncodeToString([]byte("alice:" + pass))}},
		{"bearer", Auth{Kind: AuthBearer, File: write("token", token)}, []string{token}},
		{"netrc", Auth{Kind: AuthNetrc, File: write("netrc", "machine 127.0.0.1 login bob password "+netrcPass+"\n")},
			[]string{netrcPass, base64.StdEncoding.EncodeToString([]byte("bob:" + netrcPass))}},
	} {
		for _, status := range []int{http.StatusNotFound, http.StatusForbidden} {
			t.Run(fmt.Sprintf("%s %d", tc.name, status), func(t *testing.T) {
				p := newProxy(t, goodModule(m.Path, m.Version))
				p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					_, pw, _ := r.BasicAuth()
					bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
					if !ok {
						bearer = ""
					}
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					w.WriteHeader(status)
					fmt.Fprintf(w, "not found: %s: credential %s%s may not read it (%s)\n", m, pw, bearer, r.Header.Get("Authorization"))
					return true
				})
				var logs testlog.Buffer
				srcs := mustParseList(t, p.url)
				srcs[0].Auth = tc.auth
				f, err := NewFetcher(FetcherOptions{Sources: srcs, Logger: logs.Logger()})
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.Fetch(context.Background(), m)
				e := asError(t, err)
				if !strings.Contains(e.Detail(), "may not read it") {
					t.Fatalf("Fetch: %v; want the proxy's reason in it", e.Detail())
				}
				for _, s := range tc.secrets {
					if strings.Contains(e.Error(), s) || strings.Contains(e.Detail(), s) || strings.Contains(logs.String(), s) {
						t.Errorf("the credential %q was passed on:\nclient: %s\ndetail: %s\nlogs:\n%s", s, e.Error(), e.Detail(), logs.String())
					}
				}
			})
		}
	}
}
