package tuf

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestHandler checks every kind of answer: status, content type, cache
// headers, and that nothing but the layout's files can be reached.
func TestHandler(t *testing.T) {
	vkey := newVKey(t)
	f := newFixture(t, vkey)
	vkeyPath := strings.TrimPrefix(targetFile(VKeyTarget(testName), []byte(vkey+"\n")), targetsDir)
	tests := []struct {
		method, path string
		code         int
		ctype, cache string
	}{
		{"GET", "/metadata/timestamp.json", 200, "application/json", "public, max-age=60"},
		{"GET", "/metadata/1.root.json", 200, "application/json", "public, max-age=300"},
		{"HEAD", "/metadata/1.snapshot.json", 200, "application/json", "public, max-age=300"},
		{"GET", "/metadata/1.targets.json", 200, "application/json", "public, max-age=300"},
		{"GET", "/targets" + vkeyPath, 200, "text/plain; charset=utf-8", "public, max-age=31536000, immutable"},
		{"GET", "/metadata/2.root.json", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/metadata/root.json", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/metadata/01.root.json", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/keys/.gitignore", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/metadata/../keys/x.key", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/.lock", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/targets/sumdb/" + strings.Repeat("0", 64) + "." + testName + ".vkey", 404, "text/plain; charset=utf-8", "no-store"},
		{"GET", "/metadata/" + strings.Repeat("9", 600) + ".root.json", 404, "text/plain; charset=utf-8", "no-store"},
		{"POST", "/metadata/timestamp.json", 405, "text/plain; charset=utf-8", "no-store"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, f.url+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || resp.Header.Get("Content-Type") != tt.ctype || resp.Header.Get("Cache-Control") != tt.cache {
			t.Errorf("%s %s: %d %q %q, want %d %q %q\n%s", tt.method, tt.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), tt.code, tt.ctype, tt.cache, body)
		}
		if tt.code == 200 && tt.method == "GET" && resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: Content-Length %d, body %d bytes", tt.path, resp.ContentLength, len(body))
		}
	}
}

// TestHandlerPrivate: behind credentials, metadata and targets are
// Cache-Control private, errors still no-store.
func TestHandlerPrivate(t *testing.T) {
	f := newFixture(t, newVKey(t))
	f.handler.Private = true
	for path, want := range map[string]string{
		"/metadata/timestamp.json": "private, max-age=60",
		"/metadata/1.root.json":    "private, max-age=300",
		"/metadata/2.root.json":    "no-store",
	} {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Cache-Control"); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", path, got, want)
		}
	}
}

// TestServeWhileResigning reads the timestamp and the files it names over
// and over while another goroutine re-signs many times: every response is
// whole metadata, and every snapshot a timestamp names is there.
func TestServeWhileResigning(t *testing.T) {
	f := newFixture(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			f.clock.advance(TimestampRenewAfter + 3*time.Hour) // renews the snapshot every few rounds
			f.signOnline()
		}
	})
	for range 200 {
		ts, err := metadata.Timestamp().FromBytes(fetchBody(t, f.url+"/metadata/timestamp.json"))
		if err != nil {
			t.Fatalf("served a partial timestamp: %v", err)
		}
		v := ts.Signed.Meta[metadata.SNAPSHOT+".json"].Version
		if _, err := metadata.Snapshot().FromBytes(fetchBody(t, f.url+"/metadata/"+versionedName(v, metadata.SNAPSHOT))); err != nil {
			t.Fatalf("snapshot version %d named by the timestamp: %v", v, err)
		}
	}
	close(stop)
	wg.Wait()
	if st := f.status(); st.Versions[metadata.TIMESTAMP] < 3 {
		t.Errorf("only %d timestamp versions were signed meanwhile", st.Versions[metadata.TIMESTAMP])
	}
}

func fetchBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	return body
}
