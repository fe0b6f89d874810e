package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestCrossSiteProbeInBrowser: a page of another site, open in an
// employee's Chromium, asks sumd for a lookup of a recorded version and of
// an absent one through <object> elements, whose load and error events
// tell a 200 from a 404 though the page reads neither answer. sumd refuses
// both as cross-site (docs/access.md, Pages of other sites), so the page
// learns nothing: the events are the same.
func TestCrossSiteProbeInBrowser(t *testing.T) {
	testenv.SkipShort(t, "a browser test")
	tab := browser(t)
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	hash := "h1:" + strings.Repeat("A", 43) + "="
	gosum := writeFile(t, filepath.Join(dir, "go.sum"), []byte("corp.example/secret v1.0.0 "+hash+"\ncorp.example/secret v1.0.0/go.mod "+hash+"\n"))
	sumd(t, "add", "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"), "-gosum", gosum)
	s := startServer(t, "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"))

	// The hostile page, on another site (localhost, not 127.0.0.1).
	page := fmt.Sprintf(`<!doctype html><body><script>
function probe(v) {
	return new Promise(done => {
		const o = document.createElement("object");
		o.onload = () => done("load");
		o.onerror = () => done("error");
		o.data = %q + v;
		document.body.appendChild(o);
	});
}
Promise.all([probe("corp.example/secret@v1.0.0"), probe("corp.example/absent@v1.0.0")]).then(a => { document.title = a.join(" ") });
</script>`, s.url+"/lookup/")
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}))
	defer evil.Close()
	if err := chromedp.Do(tab, chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)+"/")); err != nil {
		t.Fatalf("loading the hostile page: %v", err)
	}
	var events string
	for deadline := time.Now().Add(30 * time.Second); events == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hostile page's probes did not end")
		}
		events, _ = chromedp.Run(tab, chromedp.Title())
	}
	recorded, absent, _ := strings.Cut(events, " ")
	if recorded != absent {
		t.Errorf("a page of another site told a recorded version (%s) from an absent one (%s)", recorded, absent)
	}
}
