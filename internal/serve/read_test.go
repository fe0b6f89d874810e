package serve

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/tlog"
)

var readURL = regexp.MustCompile(`msg="serving the checksum database protocol on a read listener too" url=(\S+)`)

// readConfig is testConfig with a read listener and a log of 300 records.
func readConfig(t *testing.T) (Config, <-chan string, func() string) {
	cfg, urls, readURLOf, _ := readConfigLogs(t)
	return cfg, urls, readURLOf
}

// readConfigLogs is readConfig that returns the server's log too.
func readConfigLogs(t *testing.T) (Config, <-chan string, func() string, *testlog.Buffer) {
	cfg, urls, logs := testConfig(t)
	cfg.ReadListen = "127.0.0.1:0"
	open := cfg.OpenLog
	cfg.OpenLog = func() (*tlog.Log, error) {
		l, err := open()
		if err != nil || l.Published().Tree.N > 0 {
			return l, err
		}
		if _, err := l.Add(context.Background(), readRecords(300)...); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	}
	readURLOf := func() string {
		m := readURL.FindStringSubmatch(logs.String())
		if m == nil {
			t.Fatalf("no read listener URL in the log:\n%s", logs)
		}
		return m[1]
	}
	return cfg, urls, readURLOf, logs
}

// readRecords returns n records of made-up hashes: example.com/m<i> at
// v1.<i>.0.
func readRecords(n int) []gosum.Record {
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	recs := make([]gosum.Record, n)
	for i := range recs {
		p, v := fmt.Sprintf("example.com/m%d", i), fmt.Sprintf("v1.%d.0", i)
		recs[i] = gosum.Record{Path: p, Version: v, Hash: h(p + v), GoMod: h(p + v + "/go.mod")}
	}
	return recs
}

// ask sends a GET of path with Host host ("": the URL's) and returns
// "<status> <Content-Type> <Cache-Control> <body>".
func ask(t *testing.T, base, path, host string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), body)
}

// TestReadListener serves a log and a mirror on a read listener beside the
// main one: the protocol routes of both, /healthz and unknown paths are
// answered as on the main listener; the status, the page, /metrics,
// /admin/ and /tuf/ are unknown paths there; a host -allowed-hosts does
// not name gets 421 on both listeners, counted.
func TestReadListener(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	cfg.Mirrors = []Mirror{offlineMirror(t, "corp.example")}
	cfg.Access.AllowedHosts = []string{"sumd.corp.example"}
	url := serveTest(t, cfg, urls)
	read := readURLOf()
	if read == url || !strings.HasPrefix(read, "http://127.0.0.1:") {
		t.Fatalf("read listener URL %q (main %q)", read, url)
	}
	for _, p := range []string{
		"/latest", "/lookup/example.com/m7@v1.7.0", "/lookup/example.com/m7@v1.8.0", "/lookup/example.com/m7@latest",
		"/tile/8/0/000", "/tile/8/0/000", "/tile/8/0/001.p/44", "/tile/8/1/000.p/1", "/tile/8/data/000", "/tile/8/data/001.p/44",
		"/tile/8/0/002", "/sumdb/serve.example.com/latest", "/sumdb/serve.example.com/supported",
		"/sumdb/serve.example.com/lookup/example.com/m7@v1.7.0",
		"/sumdb/corp.example/supported", "/sumdb/corp.example/latest", "/sumdb/other.example/supported",
		"/healthz", "/example.com/m/@v/list",
	} {
		if got, want := ask(t, read, p, ""), ask(t, url, p, ""); got != want {
			t.Errorf("GET %s: read listener %.200q, main %.200q", p, got, want)
		}
	}
	compareTargets(t, read, url)
	for _, p := range []string{"/", "/status", "/metrics", "/admin/fetch", "/tuf/root.json"} {
		if got := ask(t, read, p, ""); !strings.HasPrefix(got, "404 text/plain; charset=utf-8 no-store not found: this is a checksum database (GOSUMDB), not a module proxy") {
			t.Errorf("GET %s on the read listener = %.200q, want the 404 of an unknown path", p, got)
		}
	}
	if got := ask(t, url, "/status", ""); !strings.HasPrefix(got, "200 ") {
		t.Errorf("GET /status on the main listener = %.100q", got)
	}
	before := counter(t, cfg, "sumd_access_misdirected_total")
	for _, base := range []string{read, url} {
		if got := ask(t, base, "/latest", "rebound.example"); !strings.HasPrefix(got, "421 text/plain; charset=utf-8 no-store misdirected request") {
			t.Errorf("GET /latest with Host rebound.example on %s = %.200q, want 421", base, got)
		}
		if got := ask(t, base, "/latest", "sumd.corp.example:8443"); !strings.HasPrefix(got, "200 ") {
			t.Errorf("GET /latest with Host sumd.corp.example on %s = %.200q, want 200", base, got)
		}
	}
	if n := counter(t, cfg, "sumd_access_misdirected_total") - before; n != 2 {
		t.Errorf("sumd_access_misdirected_total rose by %v, want 2", n)
	}
}

// counter is the sum of the counter name in cfg's registry.
func counter(t *testing.T, cfg Config, name string) float64 {
	t.Helper()
	mfs, err := cfg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// compareTargets sends both listeners targets no client cleans or
// escapes on the way: paths not in clean form (escaped too) get the main
// listener's ServeMux redirect, and the rest the same answer, net/http's
// own refusals (a 400 in its words or ours) aside.
func compareTargets(t *testing.T, read, main string) {
	t.Helper()
	for _, target := range []string{
		"/tile/8/0/../0/000", "//latest", "/./latest", "/sumdb/serve.example.com//latest",
		"/sumdb/serve.example.com/../../latest", "/lookup/example.com/m7/../m7@v1.7.0", "/latest/",
		"/tile/8/0/../0/000?x=1", "/latest?x=1", "/tile/8/0/000#frag", "/latest#x", "/latest?x#y", "/lat%zzest",
		"/lookup/example.com/m%37@v1.7.0", "/tile/8/0/%2E%2E/0/000", "/a%2F..%2Flatest", "/x/..%2F..%2Flatest",
		"/%2e/latest", "/x/../m%37", "HTTP://127.0.0.1/latest", "http://127.0.0.1", "http://127.0.0.1/./latest", "*",
	} {
		answer := func(base string) string {
			raw := rawExchange(t, strings.TrimPrefix(base, "http://"), "GET "+target+" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("GET %s on %s: %v in %q", target, base, err, raw)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusBadRequest && (len(body) == 0 || string(body) == "400 Bad Request" || strings.HasPrefix(string(body), "bad request: malformed") || string(body) == oddTargetText) {
				return "400 refused by HTTP"
			}
			return fmt.Sprintf("%d %s %s %s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), body)
		}
		if got, want := answer(read), answer(main); got != want {
			t.Errorf("GET %s: read listener %.200q, main %.200q", target, got, want)
		}
	}
}

// TestReadListenerAdminListen: with /admin/ on a listener of its own, the
// main listener still redirects paths not in clean form, as the read
// listener does.
func TestReadListenerAdminListen(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	cfg.AdminListen = "127.0.0.1:0"
	adm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin handler\n") })
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return l, adm, nil }
	url := serveTest(t, cfg, urls)
	compareTargets(t, readURLOf(), url)
}

// TestReadListenerRefused: a server that asks its clients for credentials
// refuses a read listener, which has no access layer, before it serves.
func TestReadListenerRefused(t *testing.T) {
	cfg, _, _, _ := accessConfig(t)
	cfg.ReadListen = "127.0.0.1:0"
	err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "-read-listen serves without the access layer") {
		t.Fatalf("Run = %v, want a refusal of -read-listen", err)
	}
}

// TestReadListenerShutdown: on the read listener too, a request in flight
// at a stop finishes, and one that outlives -shutdown-timeout is cut and
// Run reports the unclean stop.
func TestReadListenerShutdown(t *testing.T) {
	for _, timeout := range []time.Duration{5 * time.Second, 200 * time.Millisecond} {
		cfg, urls, readURLOf := readConfig(t)
		cfg.ShutdownTimeout = timeout
		ops := &blockingOps{entered: make(chan struct{}, 1), release: make(chan struct{})}
		cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
			ops.ServerOps = l
			return ops, nil, nil
		}
		ctx, stop := context.WithCancel(context.Background())
		_, done := start(t, ctx, cfg, urls)
		read := readURLOf()
		got := make(chan string, 1)
		go func() {
			resp, err := http.Get(read + "/latest")
			if err != nil {
				got <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- fmt.Sprintf("%d %s", resp.StatusCode, body)
		}()
		<-ops.entered
		stop()
		waitRefused(t, strings.TrimPrefix(read, "http://"), timeout > time.Second, done)
		if timeout > time.Second {
			close(ops.release)
			if r := <-got; !strings.HasPrefix(r, "200 go.sum database tree\n") {
				t.Errorf("request in flight at the stop: %q, want 200 and the tree head", r)
			}
			if err := wait(t, done); err != nil {
				t.Errorf("Run after a stop = %v, want nil", err)
			}
			continue
		}
		err := wait(t, done)
		if err == nil || !strings.Contains(err.Error(), "failed to shut down gracefully") {
			t.Errorf("Run = %v, want a failure to shut down gracefully", err)
		}
		if r := <-got; strings.HasPrefix(r, "200") {
			t.Errorf("request past the shutdown timeout: %q, want its connection cut", r)
		}
		close(ops.release)
	}
}

// waitRefused dials addr, a listener just stopped, until it refuses the
// connection: the stop closes it before the requests in flight end. With
// held, a request in flight is held until the test releases it, so Run
// cannot return before: returning first means the listener served on
// through the shutdown. (Without, as with a short -shutdown-timeout, Run
// may return first on a loaded machine, which proves nothing.)
func waitRefused(t *testing.T, addr string, held bool, done <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if held {
			select {
			case err := <-done:
				t.Fatalf("the read listener accepted connections after the stop until Run returned (%v), with a request in flight", err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the read listener accepted connections 15s after the stop")
		}
	}
}

// TestReadListenerStoppedAtStart: a stop that arrives before the read
// listener serves (SIGTERM just after the GOSUMDB line; one during the open
// ends the start before listening: TestStopDuringOpen) ends Run, with the
// listener closed. fasthttp's Shutdown does nothing before its Serve has
// started, and Run waited for ever on the Serve started after it.
func TestReadListenerStoppedAtStart(t *testing.T) {
	for i := range 20 {
		cfg, _, readURLOf := readConfig(t)
		ctx, cancel := context.WithCancel(context.Background())
		cfg.Ready = func(*tlog.Log, string) { cancel() }
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: Run = %v, want nil after a stop", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: Run did not return within 10 s of a stop before it served", i)
		}
		addr := strings.TrimPrefix(readURLOf(), "http://")
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("run %d: the read listener still accepts connections after Run returned", i)
		}
	}
}

// flakySocket fails Accept with err n times, then accepts conn.
type flakySocket struct {
	net.Listener
	err  error
	n    int
	conn net.Conn
}

func (s *flakySocket) Accept() (net.Conn, error) {
	if s.n > 0 {
		s.n--
		return nil, s.err
	}
	return s.conn, nil
}

func (s *flakySocket) Close() error { return nil }

// TestReadSocketRetries: the read listener rides out running out of file
// descriptors (it retries Accept, as net/http does) where fasthttp alone
// ended Serve, and so the server; other errors end it; after Close, Accept
// says closed, which fasthttp takes for a clean end.
func TestReadSocketRetries(t *testing.T) {
	conn, _ := net.Pipe()
	defer conn.Close()
	quiet := slog.New(slog.DiscardHandler)
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS} {
		s := &readSocket{Listener: &flakySocket{err: &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", errno)}, n: 3, conn: conn}, log: quiet}
		if c, err := s.Accept(); c != conn || err != nil {
			t.Errorf("%v three times, then a connection: Accept = %v, %v; want the connection", errno, c, err)
		}
	}
	other := errors.New("listener broken")
	s := &readSocket{Listener: &flakySocket{err: other, n: 1, conn: conn}, log: quiet}
	if _, err := s.Accept(); !errors.Is(err, other) {
		t.Errorf("Accept with a permanent error = %v, want it", err)
	}
	// Closed while pausing a second between retries: Accept ends at once.
	// In a synctest bubble the clock moves only while every goroutine
	// waits, so "at once" is exact: Close at 1.5 s falls in the 1 s pause
	// begun at 1.275 s, and no time passes before Accept returns (waiting
	// the pause out would return at 2.275 s).
	synctest.Test(t, func(t *testing.T) {
		s := &readSocket{Listener: &flakySocket{err: os.NewSyscallError("accept4", syscall.EMFILE), n: 1 << 30}, log: quiet}
		closed := make(chan time.Time, 1)
		go func() { time.Sleep(1500 * time.Millisecond); closed <- time.Now(); s.Close() }()
		if _, err := s.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept retrying when the socket is closed = %v, want net.ErrClosed", err)
		}
		if d := time.Since(<-closed); d != 0 {
			t.Errorf("Accept returned %s after Close, want at once", d)
		}
		if err := s.Close(); err != nil {
			t.Errorf("a second Close = %v, want nil", err)
		}
	})
}

// TestReadListenerMirrorOnly: a mirror-only server (a replica) serves its
// first mirror at the root of the read listener too, as on the main one.
func TestReadListenerMirrorOnly(t *testing.T) {
	cfg, urls, logs := testConfig(t)
	cfg.ReadListen = "127.0.0.1:0"
	cfg.OpenLog, cfg.DBFile = nil, ""
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return nil, nil, nil }
	cfg.Mirrors = []Mirror{offlineMirror(t, "corp.example"), offlineMirror(t, "other.example")}
	url := serveTest(t, cfg, urls)
	m := readURL.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no read listener URL in the log:\n%s", logs)
	}
	for _, p := range []string{"/latest", "/sumdb/corp.example/latest", "/sumdb/other.example/latest", "/sumdb/other.example/supported", "/tile/8/0/000"} {
		got, want := ask(t, m[1], p, ""), ask(t, url, p, "")
		if got != want {
			t.Errorf("GET %s: read listener %.200q, main %.200q", p, got, want)
		}
	}
	if got := ask(t, m[1], "/latest", ""); !strings.Contains(got, "the mirror of corp.example holds no signed tree head yet") {
		t.Errorf("a mirror-only read listener's /latest = %.200q, want the first mirror's", got)
	}
}

// TestShutdownFreshConnections: a connection that never sent a byte (a TCP
// health probe, a browser's preconnect) does not hold a stop: net/http
// counts it busy for five seconds and fasthttp waits for it, so with a
// -shutdown-timeout below that the stop was reported unclean ("requests
// still running … were cut") with no request in flight. Both listeners now
// close such connections when they stop. (A partly sent request is a
// request in flight: it may take the drain.)
func TestShutdownFreshConnections(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	cfg.ShutdownTimeout = 2 * time.Second
	ctx, stop := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)
	for _, u := range []string{url, readURLOf()} {
		c, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A server accepts in order: once a later connection is answered,
		// the idle one was accepted.
		req, _ := http.NewRequest("GET", u+"/healthz", nil)
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	stop()
	if err := wait(t, done); err != nil {
		t.Errorf("Run = %v, want a clean stop", err)
	}
}

// TestReadListenerCrossSite: a request a browser marks as made by another
// site is refused on the read listener as on the main one (the same 403,
// counted and logged), and a top-level navigation passes on both.
func TestReadListenerCrossSite(t *testing.T) {
	cfg, urls, readURLOf, logs := readConfigLogs(t)
	url := serveTest(t, cfg, urls)
	read := readURLOf()
	askFrom := func(base, mode, dest string) string {
		req, _ := http.NewRequest("GET", base+"/lookup/example.com/m7@v1.7.0", nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Sec-Fetch-Mode", mode)
		req.Header.Set("Sec-Fetch-Dest", dest)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s %s %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), resp.Header.Get("X-Content-Type-Options"), body)
	}
	before := counter(t, cfg, "sumd_access_denied_total")
	for _, base := range []string{read, url} {
		if got := askFrom(base, "no-cors", "image"); got != "403 text/plain; charset=utf-8 no-store nosniff "+access.CrossSiteText {
			t.Errorf("cross-site image request on %s = %q, want the 403", base, got)
		}
		if got := askFrom(base, "navigate", "document"); !strings.HasPrefix(got, "200 ") {
			t.Errorf("cross-site navigation on %s = %.100q, want 200", base, got)
		}
	}
	if n := counter(t, cfg, "sumd_access_denied_total") - before; n != 2 {
		t.Errorf("sumd_access_denied_total rose by %v, want 2", n)
	}
	denied := regexp.MustCompile(`level=INFO msg="access denied" path=/lookup/example.com/m7@v1.7.0 status=403 reason=cross_site credential=anonymous remote=127.0.0.1:\d+\n`)
	if n := len(denied.FindAllString(logs.String(), -1)); n != 2 {
		t.Errorf("%d log lines for the refusals, want one from each listener:\n%s", n, logs)
	}
}

// cancelOps holds every /latest until its context ends, and says so.
type cancelOps struct {
	sumdb.ServerOps
	entered   chan struct{}
	cancelled chan struct{}
	once      sync.Once
}

func (o *cancelOps) Signed(ctx context.Context) ([]byte, error) {
	o.entered <- struct{}{}
	<-ctx.Done()
	o.once.Do(func() { close(o.cancelled) })
	return nil, ctx.Err()
}

// TestShutdownCutCancels: a request still running when the drain times
// out has its connection cut and its context cancelled, on the read
// listener as on the main one, so that what it waits for (a store, an
// upstream fetch) stops with it rather than go on past Run's return and
// the close of the log.
func TestShutdownCutCancels(t *testing.T) {
	for _, listener := range []string{"main", "read"} {
		cfg, urls, readURLOf := readConfig(t)
		cfg.ShutdownTimeout = 200 * time.Millisecond
		ops := &cancelOps{entered: make(chan struct{}, 1), cancelled: make(chan struct{})}
		cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
			ops.ServerOps = l
			return ops, nil, nil
		}
		ctx, stop := context.WithCancel(context.Background())
		url, done := start(t, ctx, cfg, urls)
		if listener == "read" {
			url = readURLOf()
		}
		go func() {
			if resp, err := http.Get(url + "/latest"); err == nil {
				resp.Body.Close()
			}
		}()
		<-ops.entered
		stop()
		if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "failed to shut down gracefully") {
			t.Errorf("%s listener: Run = %v, want a failure to shut down gracefully", listener, err)
		}
		select {
		case <-ops.cancelled:
		case <-time.After(10 * time.Second):
			t.Errorf("%s listener: the request cut at the shutdown still runs, its context not cancelled", listener)
		}
	}
}
