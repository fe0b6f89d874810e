package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/tlog"
)

// testConfig returns a Config serving a new log in a temporary directory
// on a free port. The URL arrives on the returned channel once it listens.
func testConfig(t testing.TB) (Config, <-chan string, *testlog.Buffer) {
	t.Helper()
	skey, _, err := tlog.GenerateKey("serve.example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(testlog.Buffer)
	db := filepath.Join(t.TempDir(), "sumd.db")
	urls := make(chan string, 1)
	return Config{
		Logger:          logs.Logger(),
		Registry:        NewRegistry(),
		Listen:          "127.0.0.1:0",
		RequestTimeout:  time.Minute,
		ShutdownTimeout: 5 * time.Second,
		DBFile:          db,
		OpenLog: func() (*tlog.Log, error) {
			return tlog.Open(db, tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: logs.Logger()})
		},
		Surface: func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return l, nil, nil },
		Ready:   func(_ *tlog.Log, url string) { urls <- url },
	}, urls, logs
}

// start runs cfg in the background and returns the URL and Run's result.
func start(t testing.TB, ctx context.Context, cfg Config, urls <-chan string) (string, <-chan error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case url := <-urls:
		return url, done
	case err := <-done:
		t.Fatalf("Run failed before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not listen within 10s")
	}
	return "", nil
}

func wait(t testing.TB, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s")
		return nil
	}
}

// blockingOps holds every /latest until release is closed.
type blockingOps struct {
	sumdb.ServerOps
	entered chan struct{}
	release chan struct{}
}

func (o *blockingOps) Signed(ctx context.Context) ([]byte, error) {
	o.entered <- struct{}{}
	<-o.release
	return o.ServerOps.Signed(ctx)
}

// fakeSyncer records when its context ends.
type fakeSyncer struct {
	passes  atomic.Int32
	stopped chan time.Time
}

func (s *fakeSyncer) Sync(ctx context.Context) (*SyncReport, error) {
	if s.passes.Add(1) == 1 {
		go func() { <-ctx.Done(); s.stopped <- time.Now() }()
	}
	return &SyncReport{Outcomes: map[string]int{"recorded": 1}}, nil
}

// TestShutdownOrder stops a server with a request in flight: the request
// finishes with a 200, the parts stop only after it, the log is closed
// (its lock released) by the time Run returns, and Run returns nil.
func TestShutdownOrder(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	ops := &blockingOps{entered: make(chan struct{}, 1), release: make(chan struct{})}
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
		ops.ServerOps = l
		return ops, nil, nil
	}
	syncer := &fakeSyncer{stopped: make(chan time.Time, 1)}
	cfg.Sync = &Sync{Interval: time.Hour, Syncer: func(*tlog.Log) (Syncer, error) { return syncer, nil }}
	ctx, stop := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)

	type result struct {
		status int
		body   string
		at     time.Time
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/latest")
		if err != nil {
			got <- result{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp.StatusCode, string(body), time.Now(), nil}
	}()
	<-ops.entered
	stop()
	select {
	case at := <-syncer.stopped:
		t.Fatalf("the sync part was stopped at %v, while a request was in flight", at)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := http.Get(url + "/latest"); err == nil {
		t.Error("a new connection was accepted after the stop")
	}
	close(ops.release)
	r := <-got
	if r.err != nil || r.status != http.StatusOK || !strings.HasPrefix(r.body, "go.sum database tree\n") {
		t.Fatalf("request in flight: %d %q %v; want 200 and the tree head", r.status, r.body, r.err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("Run after a stop = %v, want nil", err)
	}
	if at := <-syncer.stopped; at.Before(r.at) {
		t.Errorf("sync part stopped at %v, before the request in flight finished at %v", at, r.at)
	}
	l, err := cfg.OpenLog() // the lock is free: the log was closed
	if err != nil {
		t.Fatalf("reopening after Run returned: %v", err)
	}
	l.Close()
}

// TestShutdownTimeout: a request that outlives the shutdown timeout is cut
// and Run reports the unclean stop.
func TestShutdownTimeout(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	ops := &blockingOps{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(ops.release)
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
		ops.ServerOps = l
		return ops, nil, nil
	}
	ctx, stop := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)
	go http.Get(url + "/latest")
	<-ops.entered
	stop()
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "failed to shut down gracefully") {
		t.Fatalf("Run = %v, want a failure to shut down gracefully", err)
	}
	var h interface{ Hint() string }
	if !errors.As(err, &h) || !strings.Contains(h.Hint(), "raise -shutdown-timeout") {
		t.Errorf("Run = %v, want a hint to raise -shutdown-timeout", err)
	}
}

// TestDatabaseFileRemoved: removing the database file under a running
// server stops it with an error naming the part and the file, and a hint.
func TestDatabaseFileRemoved(t *testing.T) {
	cfg, urls, logs := testConfig(t)
	guardInterval = 10 * time.Millisecond
	t.Cleanup(func() { guardInterval = time.Second })
	_, done := start(t, context.Background(), cfg, urls)
	if err := os.Remove(cfg.DBFile); err != nil {
		t.Fatal(err)
	}
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "database file watch stopped: the database file "+cfg.DBFile+" is gone") {
		t.Fatalf("Run = %v, want the database file watch to stop it", err)
	}
	var h interface{ Hint() string }
	if !errors.As(err, &h) || !strings.Contains(h.Hint(), "stop the server first") {
		t.Errorf("error %v has no hint", err)
	}
	if !strings.Contains(logs.String(), "part of the server died") {
		t.Errorf("the death is not logged:\n%s", logs)
	}
}

// TestDatabaseFileReplaced: a file renamed over the database is noticed too.
func TestDatabaseFileReplaced(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	guardInterval = 10 * time.Millisecond
	t.Cleanup(func() { guardInterval = time.Second })
	_, done := start(t, context.Background(), cfg, urls)
	other := cfg.DBFile + ".restored"
	if err := os.WriteFile(other, []byte("a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, cfg.DBFile); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "was replaced while served") {
		t.Fatalf("Run = %v, want the replaced file noticed", err)
	}
}

// TestPartDies covers every way a part can die, through runGroup with
// parts of the test's own making.
func TestPartDies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		run      func(ctx context.Context) error
		want     string
		wantHint string
	}{
		{"error", func(context.Context) error { return errors.New("disk on fire") }, "flaky stopped: disk on fire", "do something"},
		{"nil", func(context.Context) error { return nil }, "flaky stopped: it returned without an error", "do something"},
		// A cause with a hint of its own (a log whose keys another
		// process changed) knows better than the part's generic one.
		{"hinted", func(context.Context) error { return withHint(errors.New("keys changed"), "restart with both keys") },
			"flaky stopped: keys changed", "restart with both keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, _ := testConfig(t)
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				t.Fatal(err)
			}
			srv := listen(cfg, ln, http.NotFoundHandler())
			var otherStopped atomic.Bool
			parts := []Part{
				{Name: "flaky", Hint: "do something", Run: tc.run},
				{Name: "steady", Run: func(ctx context.Context) error { <-ctx.Done(); otherStopped.Store(true); return ctx.Err() }},
			}
			err = runGroup(context.Background(), []*listener{srv}, parts, time.Second, cfg.Logger)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("runGroup = %v, want %q", err, tc.want)
			}
			var h interface{ Hint() string }
			if !errors.As(err, &h) || h.Hint() != tc.wantHint {
				t.Errorf("runGroup's hint = %v, want %q", h, tc.wantHint)
			}
			if !otherStopped.Load() {
				t.Error("the other part was not stopped")
			}
			if _, err := http.Get(srv.url); err == nil {
				t.Error("the listener still accepts connections")
			}
		})
	}
}

// TestTakenPortFirst: a listen address that cannot be bound refuses the
// start before the log is opened (so before serve -create creates one, or
// a long -verify full), and frees the addresses bound before it.
func TestTakenPortFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	for _, tc := range []struct{ listen, metrics, flag string }{
		{taken.Addr().String(), "", "-listen"},
		{freeAddr, taken.Addr().String(), "-metrics-listen"},
	} {
		cfg, _, _ := testConfig(t)
		cfg.Listen, cfg.MetricsListen = tc.listen, tc.metrics
		opened := false
		cfg.OpenLog = func() (*tlog.Log, error) { opened = true; return nil, errors.New("opened") }
		err := Run(context.Background(), cfg)
		var h interface{ Hint() string }
		if !errors.As(err, &h) || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(h.Hint(), tc.flag) {
			t.Errorf("Run on a taken %s = %v, want a failure to listen with a hint naming %s", tc.flag, err, tc.flag)
		}
		if opened {
			t.Errorf("Run on a taken %s opened the log first", tc.flag)
		}
	}
	// The main address, bound before the taken metrics one, was freed.
	ln, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("the main address is still held after the start failed: %v", err)
	}
	ln.Close()
}

// TestCredentialsBeforeLog: a credential file that cannot be used refuses
// the start before the log is opened (or created on a first start).
func TestCredentialsBeforeLog(t *testing.T) {
	cfg, _, _ := testConfig(t)
	cfg.Access = access.Config{Mode: access.ModeBearer, File: filepath.Join(t.TempDir(), "missing.tokens")}
	opened := false
	cfg.OpenLog = func() (*tlog.Log, error) { opened = true; return nil, errors.New("opened") }
	err := Run(context.Background(), cfg)
	var h interface{ Hint() string }
	if !errors.As(err, &h) || !strings.Contains(err.Error(), "missing.tokens") || !strings.Contains(h.Hint(), "fix the credential files") {
		t.Errorf("Run with a missing token file = %v, want it named with the credential hint", err)
	}
	if opened {
		t.Error("Run with a missing token file opened the log first")
	}
}

// TestOpenLogFails: Run returns OpenLog's error unchanged, so that the
// CLI's hints survive.
func TestOpenLogFails(t *testing.T) {
	cfg, _, _ := testConfig(t)
	want := errors.New("no such key")
	cfg.OpenLog = func() (*tlog.Log, error) { return nil, want }
	if err := Run(context.Background(), cfg); !errors.Is(err, want) {
		t.Fatalf("Run = %v, want %v", err, want)
	}
}

// TestStopDuringOpen: a stop (SIGTERM) while the log opens (-verify full on
// a large log takes minutes) ends the start once the open returns: nothing
// is announced (Ready, the CLI's GOSUMDB line, which scripts wait for),
// nothing is served, the address is freed and Run returns nil, as after a
// clean stop.
func TestStopDuringOpen(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	cfg, _, logs := testConfig(t)
	cfg.Listen = addr
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	open := cfg.OpenLog
	cfg.OpenLog = func() (*tlog.Log, error) { stop(); return open() }
	ready := false
	cfg.Ready = func(*tlog.Log, string) { ready = true }
	if err := Run(ctx, cfg); err != nil {
		t.Errorf("Run stopped during the open = %v, want nil", err)
	}
	if ready {
		t.Error("Run stopped during the open announced the server ready")
	}
	if !strings.Contains(logs.String(), "stopped before serving") {
		t.Errorf("the server log does not say it stopped before serving:\n%s", logs.String())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the address is still held after a stop during the start: %v", err)
	}
	ln.Close()
}

// TestTLSHandshakeErrorQuiet: a client that connects to a TLS listener
// and goes away without a handshake (a load balancer's TCP check, a port
// scan) is logged at Info, as a client's error in the request log, not at
// Warn: any anonymous client could write a warning per connection.
func TestTLSHandshakeErrorQuiet(t *testing.T) {
	cfg, urls, logs := testConfig(t)
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cfg.TLS = ts.TLS.Clone()
	ts.Close()
	url := serveTest(t, cfg, urls)
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	var line string
	for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "TLS handshake error") {
				line = l
			}
		}
	}
	if !strings.Contains(line, "level=INFO") {
		t.Errorf("a connection closed before its TLS handshake was logged %q, want at Info", line)
	}
}
