package oci

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/mod/module"
)

// A flood is a hostile response body that goes on until the client stops
// reading (a write blocks for writeStall) or floodLimit bytes are written:
// a client that reads it whole has no limit.
type flood struct {
	written atomic.Int64
	mu      sync.Mutex
	active  int
	calls   int
}

const (
	floodLimit = 40 << 20
	writeStall = 500 * time.Millisecond
	// floodBound is what a client that stops at MaxResponseSize lets a
	// flood write: the limit, and what the loopback socket buffers hold.
	floodBound = MaxResponseSize + 16<<20
)

// serve writes head, then item until the flood ends.
func (f *flood) serve(w http.ResponseWriter, contentType, head, item string) {
	f.mu.Lock()
	f.active++
	f.calls++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", contentType)
	rc := http.NewResponseController(w)
	chunk := []byte(head + strings.Repeat(item, 64<<10/len(item)))
	for f.written.Load() < floodLimit {
		rc.SetWriteDeadline(time.Now().Add(writeStall))
		n, err := w.Write(chunk)
		f.written.Add(int64(n))
		if err != nil {
			return
		}
		chunk = chunk[len(head):]
		head = ""
	}
}

// wait waits for the flood's handlers to end and checks that the client
// stopped reading near MaxResponseSize.
func (f *flood) wait(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		done := f.calls > 0 && f.active == 0
		f.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood was never requested, or never ended")
		}
	}
	n := f.written.Load()
	t.Logf("the flood wrote %d bytes", n)
	if n >= floodBound {
		t.Errorf("the client read %d bytes of an endless response, want it to stop after %d", n, MaxResponseSize)
	}
}

// hostileSync runs a pass over e's registry with short timeouts.
func (e *syncEnv) hostileSync(t *testing.T, sources ...*Source) *Report {
	t.Helper()
	if len(sources) == 0 {
		sources = []*Source{e.src}
	}
	remote := testRemote
	remote.ResponseHeaderTimeout = 200 * time.Millisecond
	if e.listTimeout != 0 {
		remote.ResponseHeaderTimeout = 10 * time.Second
	}
	listTimeout := cmp.Or(e.listTimeout, 2*time.Second)
	s, err := NewSyncer(Options{
		Sources: sources, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
		Remote: remote, ListTimeout: listTimeout, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every bound ends the pass long before this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Second+listTimeout)
	defer cancel()
	r, err := s.Sync(ctx)
	if err != nil {
		t.Fatalf("Sync: %v\n%s", err, e.logs)
	}
	return r
}

// withVictim pushes example.com/m@v1.0.0, signed, and example.com/n@v1.0.0
// whose repository the tests make hostile: m is still recorded.
func withVictim(t *testing.T, e *syncEnv) string {
	t.Helper()
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	n := module.Version{Path: "example.com/n", Version: "v1.0.0"}
	e.push(t, testModule(t, n, map[string]string{"go.mod": "module example.com/n\n"}), e.key.sv)
	return "/v2/gomod/example.com/n/"
}

// wantFailure checks that the pass recorded m and failed once, with an
// error matching want.
func wantFailure(t *testing.T, e *syncEnv, r *Report, recorded int, want func(error) bool) {
	t.Helper()
	if r.Counts[Recorded] != recorded || len(r.Failures) != 1 || !want(r.Failures[0]) {
		t.Errorf("report %+v (failures %v), want %d recorded and the one failure expected\n%s", r, r.Failures, recorded, e.logs)
	}
}

func tooLarge(err error) bool {
	var e *errResponseTooLarge
	return errors.As(err, &e)
}

// TestSyncEndlessTagList: a tag list that never ends fails its repository
// once MaxResponseSize is read, and the pass records the other one.
func TestSyncEndlessTagList(t *testing.T) {
	e := newSyncEnv(t, true)
	// Reading MaxResponseSize of JSON takes more than the usual 2s under
	// -race on a loaded machine: the bound tested is the size.
	e.listTimeout = time.Minute
	victim := withVictim(t, e)
	var f flood
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != victim+"tags/list" {
			return false
		}
		f.serve(w, "application/json", `{"name":"n","tags":["v1.0.0"`, `,"v1.0.0"`)
		return true
	})
	r := e.hostileSync(t)
	wantFailure(t, e, r, 1, tooLarge)
	f.wait(t)
}

// TestSyncEndlessCatalog: a catalog page that never ends fails the source
// once MaxResponseSize is read.
func TestSyncEndlessCatalog(t *testing.T) {
	e := newSyncEnv(t, true)
	// Reading MaxResponseSize of JSON takes more than the usual 2s under
	// -race on a loaded machine: the bound tested is the size.
	e.listTimeout = time.Minute
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	var f flood
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/_catalog" {
			return false
		}
		f.serve(w, "application/json", `{"repositories":["gomod/example.com/m"`, `,"gomod/example.com/m"`)
		return true
	})
	wantFailure(t, e, e.hostileSync(t), 0, tooLarge)
	f.wait(t)
}

// descriptorList is a JSON object whose field is an array of item just
// under MaxResponseSize long: with "{}" or "0", millions of descriptors.
func descriptorList(head, field, item string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{%s,%q:[%s`, head, field, item)
	for b.Len() < MaxResponseSize-8 {
		b.WriteString("," + item)
	}
	b.WriteString("]}")
	return b.String()
}

// allocated returns the bytes allocated while f ran, in the whole process.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// maxAllocated is what a pass refusing a descriptor list may allocate:
// unmarshalled whole, the list takes a gigabyte or more.
const maxAllocated = 256 << 20

const indexType = "application/vnd.oci.image.index.v1+json"

// TestSyncHugeReferrers: a referrers index that never ends, or one under
// MaxResponseSize holding millions of descriptors, is refused without the
// memory unmarshalling it whole would take; since whoever may push can make
// one (referrers by the million, or the fallback tag), it is a signature
// that does not verify, naming the limit, not a failure of every pass, as
// for the .sig manifest (TestSyncHugeSignatures).
func TestSyncHugeReferrers(t *testing.T) {
	t.Run("endless", func(t *testing.T) {
		e := newSyncEnv(t, true)
		e.push(t, simpleModule(t, "v1.0.0"), nil)
		var f flood
		e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/referrers/") {
				return false
			}
			f.serve(w, indexType, `{"schemaVersion":2,"manifests":[{}`, "        ")
			return true
		})
		r := e.hostileSync(t)
		if r.Counts[BadSignature] != 1 || !r.OK() || !strings.Contains(e.logs.String(), "larger than the limit") {
			t.Errorf("report %+v (failures %v), want bad_signature naming the limit\n%s", r, r.Failures, e.logs)
		}
		f.wait(t)
	})
	t.Run("many items", func(t *testing.T) {
		e := newSyncEnv(t, true)
		e.push(t, simpleModule(t, "v1.0.0"), nil)
		index := descriptorList(`"schemaVersion":2`, "manifests", "{}")
		e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/referrers/") {
				return false
			}
			w.Header().Set("Content-Type", indexType)
			w.Write([]byte(index))
			return true
		})
		var r *Report
		if n := allocated(func() { r = e.hostileSync(t) }); n > maxAllocated {
			t.Errorf("the pass allocated %d MB for a referrers index of %d bytes", n>>20, len(index))
		}
		if r.Counts[BadSignature] != 1 || !r.OK() || !strings.Contains(e.logs.String(), "larger than the limit") {
			t.Errorf("report %+v (failures %v), want bad_signature naming the limit\n%s", r, r.Failures, e.logs)
		}
	})
}

const manifestType = "application/vnd.oci.image.manifest.v1+json"

// TestSyncHugeSignatures: the same bounds for the .sig manifest of cosign
// v2's signatures, which go-containerregistry and cosign each unmarshal
// whole; since whoever may push can put one there, it is a signature that
// does not verify, naming the limit, not a failure of every pass.
func TestSyncHugeSignatures(t *testing.T) {
	sigTag := func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, "/manifests/sha256-") && strings.HasSuffix(r.URL.Path, ".sig")
	}
	t.Run("endless", func(t *testing.T) {
		e := newSyncEnv(t, true)
		e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
		var f flood
		e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
			if !sigTag(r) || r.Method != http.MethodGet {
				return false
			}
			f.serve(w, manifestType, `{"schemaVersion":2,"layers":[{}`, "        ")
			return true
		})
		r := e.hostileSync(t)
		if r.Counts[BadSignature] != 1 || !r.OK() || !strings.Contains(e.logs.String(), "larger than the limit") {
			t.Errorf("report %+v (failures %v), want bad_signature naming the limit\n%s", r, r.Failures, e.logs)
		}
		f.wait(t)
	})
	t.Run("many items", func(t *testing.T) {
		e := newSyncEnv(t, true)
		e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
		m := descriptorList(`"schemaVersion":2,"mediaType":"`+manifestType+`"`, "layers", "0")
		e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
			if !sigTag(r) || r.Method != http.MethodGet {
				return false
			}
			w.Header().Set("Content-Type", manifestType)
			w.Write([]byte(m))
			return true
		})
		var r *Report
		if n := allocated(func() { r = e.hostileSync(t) }); n > maxAllocated {
			t.Errorf("the pass allocated %d MB for a .sig manifest of %d bytes", n>>20, len(m))
		}
		if r.Counts[BadSignature] != 1 || !r.OK() || !strings.Contains(e.logs.String(), "larger than the limit") {
			t.Errorf("report %+v (failures %v), want bad_signature naming the limit\n%s", r, r.Failures, e.logs)
		}
	})
}

// silent is a registry that accepts connections and never answers, until
// the test ends.
func silent(t *testing.T) string {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestResponseHeaderTimeout: the default transport gives up on a registry
// that sends no response headers.
func TestResponseHeaderTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+silent(t)+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Remote{ResponseHeaderTimeout: 100 * time.Millisecond}.transport().RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("RoundTrip: %v, want a response header timeout", err)
	}
}

// TestTransportCapsAllButBlobs: every response body but a blob's, even
// one reached through a redirect, stops at MaxResponseSize.
func TestTransportCapsAllButBlobs(t *testing.T) {
	big := strings.Repeat("x", MaxResponseSize+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/r/blobs/sha256:ab" || r.URL.Path == "/v2/r/manifests/redirected" {
			http.Redirect(w, r, "/storage/data", http.StatusTemporaryRedirect)
			return
		}
		w.Write([]byte(big))
	}))
	defer srv.Close()
	client := &http.Client{Transport: Remote{}.transport()}
	for path, blob := range map[string]bool{
		"/v2/r/blobs/sha256:aa":         true,
		"/v2/r/blobs/sha256:ab":         true, // redirected to storage
		"/v2/r/manifests/v1.0.0":        false,
		"/v2/r/manifests/redirected":    false,
		"/v2/r/tags/list":               false,
		"/v2/_catalog":                  false,
		"/v2/r/blobs/uploads/x":         false,
		"/v2/blobs/blobs/manifests/a:b": false,
		"/token":                        false,
	} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case blob && (err != nil || n != int64(len(big))):
			t.Errorf("%s: read %d bytes, %v; want the whole blob", path, n, err)
		case !blob && (!tooLarge(err) || n != MaxResponseSize):
			t.Errorf("%s: read %d bytes, %v; want %d and an error", path, n, err, MaxResponseSize)
		}
	}
}

// TestLimitedBody: a body of exactly the limit reads whole; one byte or
// one item more fails, however the reads are cut.
func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		body         string
		bytes, items int64
		wantErr      string // "" for none
	}{
		{"0123456789", 10, -1, ""},
		{"01234567890", 10, -1, "10 bytes"},
		{`{"a":1,"b":2}`, 100, 2, ""},
		{`{"a":1,"b":2,"c":3}`, 100, 2, "2 JSON items"},
		{`{"a":[0,0,0]}`, 100, 3, ""},
		{`{"a":[0,0,0,0]}`, 100, 3, "3 JSON items"},
		{"[0,0,0]", 100, -1, ""},
	} {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = &limitedBody{
				rc: io.NopCloser(strings.NewReader(tc.body)), bytes: tc.bytes, items: tc.items,
				tooLarge: func(limit int64, unit string) error { return fmt.Errorf("over %d %s", limit, unit) },
			}
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			got, err := io.ReadAll(r)
			switch {
			case tc.wantErr == "" && (err != nil || string(got) != tc.body):
				t.Errorf("%s (one byte at a time: %v): read %q, %v; want it whole", tc.body, oneByte, got, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || int64(len(got)) > tc.bytes):
				t.Errorf("%s (one byte at a time: %v): read %q, %v; want at most %d bytes and an error over %s", tc.body, oneByte, got, err, tc.bytes, tc.wantErr)
			}
		}
	}
}

// TestSyncRedirectCredentials: registries send blobs (and some manifests)
// from storage at a pre-signed URL, whose query is a credential. A
// transport failure there must not put it, or the URL's user info, in the
// report or the log.
func TestSyncRedirectCredentials(t *testing.T) {
	for _, what := range []string{"blob", "manifest"} {
		t.Run(what, func(t *testing.T) {
			e := newSyncEnv(t, true)
			p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			path := "/manifests/" + p.Ref.DigestStr()
			if what == "blob" {
				path = "/blobs/" + manifestOf(t, p).Mod.Digest.String()
			}
			storage := "http://storageuser:storagepass@" + e.reg.host + "/storage/x?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=SECRETSIG#frag"
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				switch {
				case strings.HasSuffix(r.URL.Path, path) && r.Method == http.MethodGet:
					http.Redirect(w, r, storage, http.StatusTemporaryRedirect)
					return true
				case strings.HasPrefix(r.URL.Path, "/storage/"):
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close() // EOF: a transport failure
					}
					return true
				}
				return false
			})
			r := e.hostileSync(t)
			e.wantOutcome(t, r, Failed)
			out := fmt.Sprint(r.Failures) + e.logs.String()
			if !strings.Contains(out, "/storage/x") {
				t.Errorf("the failure does not name the storage URL:\n%s", out)
			}
			for _, secret := range []string{"SECRETSIG", "AKIAEXAMPLE", "storageuser", "storagepass", "frag"} {
				if strings.Contains(out, secret) {
					t.Errorf("%s in the report or the log:\n%s", secret, out)
				}
			}
		})
	}
}

// TestSyncRedirectToLinkLocal: a registry redirecting a blob or manifest
// to a link-local address (the cloud metadata service) is refused without
// a request there, as go-containerregistry refuses it for its own
// requests: a hostile registry must not make sumd a client of it.
func TestSyncRedirectToLinkLocal(t *testing.T) {
	for _, what := range []string{"blob", "manifest"} {
		t.Run(what, func(t *testing.T) {
			e := newSyncEnv(t, true)
			p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			path := "/manifests/" + p.Ref.DigestStr()
			if what == "blob" {
				path = "/blobs/" + manifestOf(t, p).Mod.Digest.String()
			}
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, path) || r.Method != http.MethodGet {
					return false
				}
				http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
				return true
			})
			r := e.hostileSync(t)
			e.wantOutcome(t, r, Failed)
			if out := fmt.Sprint(r.Failures); !strings.Contains(out, "refusing a redirect to link-local address 169.254.169.254") {
				t.Errorf("the failure does not say the redirect was refused:\n%s", out)
			}
		})
	}
}

// TestCheckRedirect: where a registry's redirect may send sumd.
func TestCheckRedirect(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"registry.example.com", "storage.example.net", true},
		{"registry.example.com", "registry.example.com", true},
		{"registry.example.com", "203.0.113.7", true},
		{"registry.example.com", "169.254.169.254", false},
		{"registry.example.com", "[fe80::1%25eth0]", false},
		{"registry.example.com", "[::ffff:169.254.169.254]", false},
		{"registry.example.com", "10.0.0.5", false},
		{"registry.example.com", "127.0.0.1", false},
		{"registry.example.com", "[::1]", false},
		{"203.0.113.7", "192.168.1.2", false},
		{"10.0.0.5", "10.0.0.6", true},
		{"127.0.0.1", "127.0.0.1:9000", true},
		{"10.0.0.5", "169.254.169.254", false},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+c.to+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		via, err := http.NewRequest(http.MethodGet, "http://"+c.from+"/v2/r/blobs/sha256:00", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkRedirect(req, []*http.Request{via}); (err == nil) != c.ok {
			t.Errorf("redirect from %s to %s: %v, want allowed %v", c.from, c.to, err, c.ok)
		}
	}
}
