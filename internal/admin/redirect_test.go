package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestNoRedirect checks that no admin request follows a redirect, here from
// https to plain http on the same host (another port), where net/http would
// send the Authorization header in clear: each fails with a *RedirectError
// naming where the server pointed, and the other server hears nothing.
func TestNoRedirect(t *testing.T) {
	var reached atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		http.Error(w, "nope", http.StatusTeapot)
	}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, plain.URL+"/base"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer secure.Close()
	zip := filepath.Join(t.TempDir(), "m.zip")
	os.WriteFile(zip, []byte("not a zip"), 0o600)
	ctx := context.Background()
	calls := map[string]func(c *Client) error{
		"fetch": func(c *Client) error { _, err := c.Fetch(ctx, mv("example.com/m", "v1.0.0")); return err },
		"upload": func(c *Client) error {
			_, err := c.Upload(ctx, mv("example.com/m", "v1.0.0"), zip, "")
			return err
		},
		"add": func(c *Client) error {
			_, err := c.Add(ctx, []gosum.Record{{Path: "example.com/m", Version: "v1.0.0", Hash: testHash, GoMod: testHash}}, false)
			return err
		},
		"backup": func(c *Client) error { _, err := c.Backup(ctx, io.Discard, "", -1); return err },
	}
	for name, call := range calls {
		for _, auth := range []bool{false, true} {
			c := &Client{URL: secure.URL, Token: testToken, HTTPClient: secure.Client()}
			if auth {
				c.Auth = func(r *http.Request) error { r.SetBasicAuth("admin", "secret"); return nil }
			}
			err := call(c)
			var re *RedirectError
			if !errors.As(err, &re) {
				t.Errorf("%s (auth %v): %v, want a *RedirectError", name, auth, err)
				continue
			}
			if re.Base != plain.URL+"/base" {
				t.Errorf("%s: redirect to base %q, want %q (%v)", name, re.Base, plain.URL+"/base", err)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want none", n)
	}
}
