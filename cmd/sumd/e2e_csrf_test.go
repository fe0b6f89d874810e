package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdpfetch "github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/testenv"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// TestAdminCrossSiteInBrowser is cross-site request forgery in a real
// browser: an operator whose Chromium holds sumd's Basic credentials (an
// admin's, as for looking at the status page) visits a page of another
// site, which submits a form of go.sum lines to /admin/add. The browser
// attaches the credentials to that top-level POST; sumd must refuse it by
// the browser's Sec-Fetch-Site and Origin, and record nothing.
func TestAdminCrossSiteInBrowser(t *testing.T) {
	testenv.SkipShort(t, "a browser test")
	tab := browser(t)
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := writeFile(t, filepath.Join(dir, "htpasswd"), []byte("ops:"+string(hash)+":admin\n"))
	os.Chmod(users, 0o600)
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-read-auth", "basic", "-read-auth-file", users)

	// The hostile page, on another site (localhost, not 127.0.0.1): a
	// text/plain form, which needs no CORS preflight, whose two fields
	// are the go.sum lines of a version without their final "=".
	h := func(c byte) string { return "h1:" + strings.Repeat(string(c), 43) }
	page := fmt.Sprintf(`<!doctype html><form id=f method=post enctype=text/plain action=%q>
<input name="example.com/forged v1.0.0 %s" value="">
<input name="example.com/forged v1.0.0/go.mod %s" value="">
</form><script>document.getElementById("f").submit()</script>`, s.url+"/admin/add", h('A'), h('E')) // valid: each last digit's padding bits are zero
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	// The operator's browser answers every Basic challenge with the
	// admin's credentials, as it does once they were typed: the strongest
	// case, since the browser then always has them to attach.
	//
	// The answers go to the tab's target directly (cdp.Call): chromedp.Call
	// from an event that comes as the test ends would start another
	// browser on the context, which chromedp v0.23 does not survive (a
	// close of a closed channel in its allocator).
	var mu sync.Mutex
	var authed []string
	var wg sync.WaitGroup
	ctx := tab
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	target := chromedp.FromContext(ctx).Target
	answer := func(call func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); call() }()
	}
	defer wg.Wait()
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpfetch.EventRequestPaused:
			answer(func() error {
				_, err := cdp.Call(ctx, target, cdpfetch.ContinueRequest, cdpfetch.ContinueRequestParams{RequestID: ev.RequestID})
				return err
			})
		case *cdpfetch.EventAuthRequired:
			mu.Lock()
			authed = append(authed, ev.Request.Method+" "+ev.Request.URL)
			mu.Unlock()
			answer(func() error {
				_, err := cdp.Call(ctx, target, cdpfetch.ContinueWithAuth, cdpfetch.ContinueWithAuthParams{RequestID: ev.RequestID,
					AuthChallengeResponse: &cdpfetch.AuthChallengeResponse{Response: cdpfetch.AuthChallengeResponseResponseProvideCredentials, Username: "ops", Password: "ops-pw"}})
				return err
			})
		}
	}); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := cdp.Call(ctx, target, cdpfetch.Enable, cdpfetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatal(err)
	}
	// The operator looks at the status page first.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#tree-size"))); err != nil {
		t.Fatalf("loading the status page: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(evilURL+"/")); err != nil {
		t.Fatalf("loading the hostile page: %v", err)
	}
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.HasPrefix(loc, s.url+"/admin/add") {
			body, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			if err == nil && body != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hostile page's form did not reach sumd (at %q)", loc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, "cross-origin request refused") {
		t.Errorf("the cross-site POST was answered %q, want the cross-origin refusal", body)
	}

	// Nothing was recorded: the signed tree is still empty.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.url+"/latest", nil)
	req.SetBasicAuth("ops", "ops-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("/latest: %v (%s)", err, signed)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	if tree.N != 0 {
		t.Errorf("a cross-site form recorded %d records", tree.N)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(authed) == 0 {
		t.Errorf("the browser was never asked for credentials: the test did not hold the operator's login")
	}
}

// TestAllowedHosts: with -allowed-hosts, a request naming another host (a
// page of an attacker's site whose name was rebound to sumd's address)
// gets 421 and nothing of the log; one naming an allowed name or the
// address is served.
func TestAllowedHosts(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-allowed-hosts", "sumd.corp.example")
	get := func(host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, s.url+"/latest", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("rebind.attacker.example"); code != http.StatusMisdirectedRequest || strings.Contains(body, "go.sum database tree") {
		t.Errorf("/latest for another host: %d %q, want 421 without the head", code, body)
	}
	for _, host := range []string{"sumd.corp.example", strings.TrimPrefix(s.url, "http://")} {
		if code, body := get(host); code != http.StatusOK || !strings.HasPrefix(body, "go.sum database tree") {
			t.Errorf("/latest for %s: %d %q, want the signed head", host, code, body)
		}
	}
}
