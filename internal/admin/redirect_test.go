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

// TestRedirectBaseUnderPrefix: a RedirectError's Base is the URL to use as
// the client's URL, also for a client URL with a path (sumd behind a proxy
// at https://host/sumd): only the API's path is cut from the location, not
// the request's whole path, which took the client URL's path with it.
func TestRedirectBaseUnderPrefix(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, "https://new.example/moved"+r.URL.RequestURI(), http.StatusPermanentRedirect)
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL + "/sumd", Token: testToken}
	_, err := c.Add(context.Background(), []gosum.Record{{Path: "example.com/m", Version: "v1.0.0", Hash: testHash, GoMod: testHash}}, true)
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("Add: %v, want a *RedirectError", err)
	}
	if want := "https://new.example/moved/sumd"; re.Base != want {
		t.Errorf("redirect to base %q, want %q (%v)", re.Base, want, err)
	}
}
