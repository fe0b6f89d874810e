package admin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// slowBody trickles a request body: a short read every 50 ms.
type slowBody struct{ r io.ReadCloser }

func (b slowBody) Read(p []byte) (int, error) {
	time.Sleep(50 * time.Millisecond)
	return b.r.Read(p[:min(len(p), 512)])
}

func (b slowBody) Close() error { return b.r.Close() }

type slowTransport struct{}

func (slowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body = slowBody{req.Body}
		req.ContentLength = -1
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestSlowUpload: an upload that takes far longer than the server's read
// and write timeouts (sized for lookups) still arrives, because the upload
// handler extends its own deadlines after authentication.
func TestSlowUpload(t *testing.T) {
	s := newSetup(t, Options{})
	rec := s.srv.Config.Handler
	srv := httptest.NewUnstartedServer(rec)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	m := mv("example.com/slow", "v1.0.0")
	mod := goodModule(m.Path, m.Version)
	mod.Files["pad.txt"] = string(make([]byte, 8<<10)) // enough 50 ms reads to outlast the timeouts
	if _, err := testproxy.Build(dir, []testproxy.Module{mod}); err != nil {
		t.Fatal(err)
	}
	c := &Client{URL: srv.URL, Token: testToken, HTTPClient: &http.Client{Transport: slowTransport{}}}
	start := time.Now()
	res, err := c.Upload(context.Background(), m, testproxy.ZipPath(dir, m), "")
	if err != nil {
		t.Fatalf("slow upload failed after %v: %v", time.Since(start), err)
	}
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond || res.TreeSize != 1 {
		t.Fatalf("upload took %v (want longer than the 200 ms server timeouts), tree size %d", elapsed, res.TreeSize)
	}
}

// slowServer serves h with read and write timeouts far shorter than the
// test's requests take, as sumd's listeners do for anonymous clients.
func slowServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSlowAdd: go.sum lines trickled for longer than the server's read
// timeout still arrive: an authenticated add extends its deadlines as an
// upload does.
func TestSlowAdd(t *testing.T) {
	s := newSetup(t, Options{})
	url := slowServer(t, s.srv.Config.Handler)
	var recs []gosum.Record
	for i := range 40 { // about 5 KiB: ten 512-byte reads 50 ms apart
		recs = append(recs, fakeRec(i, ""))
	}
	c := &Client{URL: url, Token: testToken, HTTPClient: &http.Client{Transport: slowTransport{}}}
	start := time.Now()
	res, err := c.Add(context.Background(), recs, false)
	if err != nil {
		t.Fatalf("slow add failed after %v: %v", time.Since(start), err)
	}
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond || res.New != len(recs) {
		t.Fatalf("add took %v (want longer than the 200 ms server timeouts), %d new records, want %d", elapsed, res.New, len(recs))
	}
}
