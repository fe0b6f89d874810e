package upstream

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientAuth: sumd's clients send credentials as the go command does:
// the default .netrc if there is one (nothing if not), over HTTPS or to a
// loopback address only, and only to the server's host.
func TestClientAuth(t *testing.T) {
	dir := t.TempDir()
	netrc := filepath.Join(dir, "netrc")
	os.WriteFile(netrc, []byte("machine 127.0.0.1:8443 login alice password pw\nmachine sum.example.com login bob password pw2\n"), 0o600)
	t.Setenv("NETRC", netrc)
	def, err := ClientAuth("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url, want string
	}{
		{"https://127.0.0.1:8443/latest", "alice"},
		{"http://127.0.0.1:8443/latest", "alice"}, // loopback
		{"https://sum.example.com/latest", "bob"},
		{"http://sum.example.com/latest", ""}, // never in the clear
		{"https://other.example.com/latest", ""},
	} {
		req := httptest.NewRequest("GET", c.url, nil)
		if err := def.Apply(req); err != nil {
			t.Errorf("%s: %v", c.url, err)
		}
		if user, _, _ := req.BasicAuth(); user != c.want {
			t.Errorf("%s: sent user %q, want %q", c.url, user, c.want)
		}
	}

	t.Setenv("NETRC", filepath.Join(dir, "missing"))
	def, _ = ClientAuth("")
	req := httptest.NewRequest("GET", "https://sum.example.com/latest", nil)
	if err := def.Apply(req); err != nil || req.Header.Get("Authorization") != "" {
		t.Errorf("without a .netrc: %v, %q; want no credentials and no error", err, req.Header.Get("Authorization"))
	}
	if _, err := ClientAuth("netrc:" + filepath.Join(dir, "missing")); err == nil {
		t.Error("an explicit .netrc that does not exist was accepted")
	}

	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("tok-0123456789abcdef\n"), 0o600)
	bearer, err := ClientAuth("bearer:" + token)
	if err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest("GET", "http://sum.example.com/latest", nil)
	if err := bearer.Apply(req); err == nil || !strings.Contains(err.Error(), "over plain HTTP") {
		t.Errorf("explicit credentials over plain HTTP: %v, want a refusal", err)
	}

	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization"))
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://localhost:"+strings.Split(r.Host, ":")[1]+"/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	client := &http.Client{Transport: bearer.Transport(nil, host)}
	resp, err := client.Get(srv.URL + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{"/redirect Bearer tok-0123456789abcdef", "/elsewhere "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q: credentials only for the server's host", got, want)
	}
}
