package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
)

// TestRemoteErrorHints: each answer of the admin API gets a hint that says
// what happened to the request and what to do; a refusal by the upstream
// cross-check is not presented as passing, and only a passing failure
// suggests trying again.
func TestRemoteErrorHints(t *testing.T) {
	for status, want := range map[int]string{
		http.StatusUnauthorized:        "credentials are missing or wrong",
		http.StatusConflict:            "can never change",
		http.StatusGone:                "upstream checksum database disagrees",
		http.StatusUnprocessableEntity: "not a valid module of this version",
		http.StatusServiceUnavailable:  "try again later",
		http.StatusGatewayTimeout:      "try again later",
		http.StatusInternalServerError: "whether this request's versions were recorded is not known",
		http.StatusBadRequest:          "nothing from this request was added",
		// sumd's own: an upload's zip had no room in its -tmp-dir.
		http.StatusInsufficientStorage: "nothing from this request was added",
		// A proxy in front (Cloudflare's "a timeout occurred") answers
		// it after sumd took the request, which it may have recorded.
		524: "whether this request's versions were recorded is not known",
	} {
		var ce *cliError
		if !errors.As(remoteError(&admin.Error{Status: status, Message: "x"}), &ce) {
			t.Fatalf("status %d: no hint", status)
		}
		if !strings.Contains(ce.hint, want) {
			t.Errorf("status %d: hint %q, want one containing %q", status, ce.hint, want)
		}
		if (status == http.StatusGone || status == http.StatusUnprocessableEntity) && strings.Contains(ce.hint, "again") {
			t.Errorf("status %d: hint %q suggests trying again a refusal that does not pass", status, ce.hint)
		}
	}
}

// TestRemoteSinkTmpDir: sumd add -server -gosum prepares -tmp-dir as the
// local add does, before it reads a line: created 0700, refused if others
// may write to it, cleared of a crash's runs. It was used as given, so a
// missing directory failed only at the first run, after minutes of sorting.
func TestRemoteSinkTmpDir(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Add{Server: "http://127.0.0.1:1", TokenFile: writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n"),
		TmpDir: filepath.Join(dir, "new", "tmp")}
	tmp, err := openGosumTmp(cfg, io.Discard)
	if err != nil {
		t.Fatalf("openGosumTmp with a new -tmp-dir: %v", err)
	}
	tmp.close(false)
	if fi, err := os.Stat(cfg.TmpDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("-tmp-dir after openGosumTmp: %v, %v; want a directory of mode 0700", fi, err)
	}
	orphan := filepath.Join(cfg.TmpDir, "sumd-sort-123.run")
	if err := os.WriteFile(orphan, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if tmp, err = openGosumTmp(cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	tmp.close(false)
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a run a crash left in -tmp-dir is still there: %v", err)
	}
	if err := os.Chmod(cfg.TmpDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := openGosumTmp(cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("openGosumTmp with a world-writable -tmp-dir = %v, want it refused", err)
	}
}

// TestRemoteDroppedConnection: a server that drops the connection after
// the request was sent (killed, restarted) is not presented as a wrong
// -server URL: whether the request was recorded is not known, and running
// the same command again is safe. So for an upload.
func TestRemoteDroppedConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c := &admin.Client{URL: srv.URL, Token: "0123456789abcdef0123456789abcdef"}
	zip := writeFile(t, filepath.Join(t.TempDir(), "m.zip"), []byte("PK"))
	_, addErr := c.Add(context.Background(), []gosum.Record{verifyRecord("dropped", 1)}, false)
	_, uploadErr := c.Upload(context.Background(), module.Version{Path: "example.com/m", Version: "v1.0.0"}, zip, "")
	for name, err := range map[string]error{"add": addErr, "upload": uploadErr} {
		var ce *cliError
		if !errors.As(remoteError(err), &ce) || strings.Contains(ce.hint, "check -server") ||
			!strings.Contains(ce.hint, "dropped the connection") || !strings.Contains(ce.hint, "not known") || !strings.Contains(ce.hint, "run the same command again") {
			t.Errorf("%s: a dropped connection: %v (hint %+v); want a hint that the server dropped it, the outcome is not known and running again is safe", name, err, ce)
		}
	}
	if !errors.Is(remoteError(&url.Error{Op: "Post", URL: srv.URL, Err: syscall.ECONNRESET}), syscall.ECONNRESET) {
		t.Error("remoteError dropped the cause")
	}
}

// TestRemoteRedirect: sumd add -server and sumd backup -server follow no
// redirect (net/http would carry the admin token to the same host on
// another scheme or port) and say which URL to use as -server instead.
func TestRemoteRedirect(t *testing.T) {
	reached := 0
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/sumd"+r.URL.Path, http.StatusPermanentRedirect)
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	for _, args := range [][]string{
		{"add", "-server", srv.URL, "-token-file", token, "example.com/m@v1.0.0"},
		{"backup", "-server", srv.URL, "-token-file", token, "-o", filepath.Join(dir, "b.db")},
	} {
		var stderr strings.Builder
		if code := run(args, io.Discard, &stderr); code == 0 {
			t.Errorf("%s: succeeded", args[0])
		}
		if want := "use " + other.URL + "/sumd as -server"; !strings.Contains(stderr.String(), want) {
			t.Errorf("%s: stderr %q, want it to say %q", args[0], stderr.String(), want)
		}
	}
	if reached != 0 {
		t.Errorf("the redirect target got %d requests, want none", reached)
	}
}

// TestBackupBusyHint: a backup refused because another is being made says
// to run the command again once it is done, not to check -server.
func TestBackupBusyHint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "another backup is being made: try again once it is done", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	var stderr strings.Builder
	if code := run([]string{"backup", "-server", srv.URL, "-token-file", token, "-o", filepath.Join(dir, "b.db")}, io.Discard, &stderr); code == 0 {
		t.Error("succeeded")
	}
	if got := stderr.String(); !strings.Contains(got, "one backup at a time") || strings.Contains(got, "check -server") {
		t.Errorf("stderr %q, want the hint to run it again once the other backup is done", got)
	}
}

// TestParseModuleArgIncompatible: sumd add MODULE@VERSION (local, -server,
// oci push) refuses a +incompatible version the go command never makes, as
// sumd add -gosum does, before zipping anything.
func TestParseModuleArgIncompatible(t *testing.T) {
	for _, arg := range []string{"example.com/m@v1.0.0+incompatible", "example.com/m/v2@v2.0.0+incompatible"} {
		if _, err := parseModuleArg(arg); err == nil || !strings.Contains(err.Error(), "+incompatible suffix not allowed") {
			t.Errorf("parseModuleArg(%q) = %v, want the +incompatible refusal", arg, err)
		}
	}
	if m, err := parseModuleArg("example.com/m@v2.0.0+incompatible"); err != nil || m.Version != "v2.0.0+incompatible" {
		t.Errorf("parseModuleArg of a major version without go.mod = %v, %v", m, err)
	}
}

// TestTreeSizeNote: a server that stored the records but could not read
// its signed head leaves tree_size out; sumd add says so instead of
// printing "tree size 0", a size no tree holding a record has.
func TestTreeSizeNote(t *testing.T) {
	if got := treeSizeNote(0); !strings.Contains(got, "not known") || strings.Contains(got, "tree size 0") {
		t.Errorf("treeSizeNote(0) = %q", got)
	}
	if got := treeSizeNote(42); got != "tree size 42" {
		t.Errorf("treeSizeNote(42) = %q, want tree size 42", got)
	}
}

// TestAdminTokenPlainHTTP: the admin API's clients refuse to send the
// admin token in clear over http:// to a server not on this machine,
// saying to use https:// or -insecure-http, and send it with
// -insecure-http, or to a loopback address.
func TestAdminTokenPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	sum := writeFile(t, filepath.Join(dir, "go.sum"), verifyRecord("plain", 0).Text())
	commands := func(server string) [][]string {
		return [][]string{
			{"add", "-server", server, "-token-file", token, "example.com/m@v1.0.0"},
			{"add", "-server", server, "-token-file", token, "-gosum", sum},
			{"backup", "-server", server, "-token-file", token, "-o", filepath.Join(dir, "b.db")},
		}
	}
	const remote = "http://sumd.invalid:8080" // never resolves
	for _, args := range commands(remote) {
		_, errOut, err := sumdRun(t, args...)
		if statusOf(err) != 2 || !strings.Contains(errOut, "refusing to send the admin token to sumd.invalid:8080 in clear") ||
			!strings.Contains(errOut, "https://") || !strings.Contains(errOut, "-insecure-http") {
			t.Errorf("sumd %s: exit %d\n%s\nwant 2, refusing the token over plain HTTP", strings.Join(args, " "), statusOf(err), errOut)
		}
		_, errOut, _ = sumdRun(t, append([]string{args[0], "-insecure-http"}, args[1:]...)...)
		if strings.Contains(errOut, "refusing") {
			t.Errorf("sumd %s -insecure-http: %s\nwant the token sent", strings.Join(args, " "), errOut)
		}
	}
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	for _, args := range commands("http://localhost:" + u.Port()) {
		_, errOut, _ := sumdRun(t, args...)
		if strings.Contains(errOut, "refusing") {
			t.Errorf("sumd %s: %s\nwant the token sent to a loopback address", strings.Join(args, " "), errOut)
		}
	}
	if len(got) == 0 || got[0] != "Bearer 0123456789abcdef0123456789abcdef" {
		t.Errorf("the loopback server got Authorization %q", got)
	}
}

// TestAddServerURL: a -server that is not an http:// or https:// URL (a
// host and port without the scheme, as -listen takes) is a usage error
// naming the option and the form it wants, as sumd backup's is, before the
// go.sum files are read: it failed at the first request with net/url's
// "first path segment in URL cannot contain colon" or net/http's
// "unsupported protocol scheme" and exit status 1.
func TestAddServerURL(t *testing.T) {
	dir := t.TempDir()
	tok := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	sum := filepath.Join(dir, "go.sum")
	os.WriteFile(sum, []byte("example.com/m v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"), 0o600)
	for _, server := range []string{"127.0.0.1:8080", "sumd.example.com", "ftp://sumd.example.com"} {
		for _, args := range [][]string{{"example.com/m@v1.0.0"}, {"-gosum", sum}} {
			_, errOut, err := sumdRun(t, append([]string{"add", "-server", server, "-token-file", tok}, args...)...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(errOut, "server") || !strings.Contains(errOut, "https://") {
				t.Errorf("sumd add -server %s %s: %v\n%s; want exit status 2 and an error saying -server wants an https:// URL", server, strings.Join(args, " "), err, errOut)
			}
		}
	}
}

// TestBackupStatusHints: each refusal of GET /admin/backup gets a hint for
// its cause: a 507 (no room in the server's -tmp-dir for the copy) and a
// 500 said to check -server and the credentials, which were fine.
func TestBackupStatusHints(t *testing.T) {
	for status, want := range map[int]string{
		http.StatusInsufficientStorage: "-tmp-dir",
		http.StatusInternalServerError: "server's log",
		http.StatusNotImplemented:      "its own tools",
		http.StatusUnauthorized:        "-token-file",
		http.StatusNotFound:            "admin API",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "refused", status)
		}))
		dir := t.TempDir()
		token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
		var stderr strings.Builder
		if code := run([]string{"backup", "-server", srv.URL, "-token-file", token, "-o", filepath.Join(dir, "b.db")}, io.Discard, &stderr); code == 0 {
			t.Errorf("%d: succeeded", status)
		}
		srv.Close()
		got := stderr.String()
		if !strings.Contains(got, want) || status/100 == 5 && strings.Contains(got, "check -server") {
			t.Errorf("backup refused with %d: stderr %q, want a hint naming %q", status, got, want)
		}
	}
}

// TestRemoteErrorMirrorOnly: sumd add -server against a server that
// serves mirrors only (whose admin API answers backups alone) says to add
// to the server of the log: the hint of a 404 said the API was off and to
// start the server with -admin-token-file, which it had.
func TestRemoteErrorMirrorOnly(t *testing.T) {
	s := httptest.NewServer(admin.New(nil, admin.Options{Authenticated: true}))
	defer s.Close()
	_, err := (&admin.Client{URL: s.URL}).Fetch(context.Background(), module.Version{Path: "example.com/m", Version: "v1.0.0"})
	var ce *cliError
	if !errors.As(remoteError(err), &ce) || !strings.Contains(ce.hint, "mirrors only") || strings.Contains(ce.hint, "-admin-token-file") {
		t.Errorf("remoteError(%v) = %v, want a hint that the server serves mirrors only", err, remoteError(err))
	}
}

// TestAuthPlainHTTP: -auth's credentials for a server over plain http://,
// not on this machine, are refused as a mistake in the options (exit
// status 2) before anything is read, naming -insecure-http, as the admin
// token is; they were refused at the first request with the hint to check
// -server, and for sumd add -gosum after the sort. With -insecure-http they
// are sent; none, and the .netrc by default, are not refused.
func TestAuthPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	pw := writeSecret(t, filepath.Join(dir, "admin.pw"), "0123456789abcdef\n")
	sum := writeFile(t, filepath.Join(dir, "go.sum"), verifyRecord("plain", 0).Text())
	const remote = "http://sumd.invalid:8080" // never resolves
	auth := "basic:admin:" + pw
	for _, args := range [][]string{
		{"add", "-server", remote, "-auth", auth, "example.com/m@v1.0.0"},
		{"add", "-server", remote, "-auth", auth, "-gosum", sum},
		{"backup", "-server", remote, "-auth", auth, "-o", filepath.Join(dir, "b.db")},
	} {
		_, errOut, err := sumdRun(t, args...)
		if statusOf(err) != 2 || !strings.Contains(errOut, "refusing to send the -auth credentials to sumd.invalid:8080 in clear") ||
			!strings.Contains(errOut, "https://") || !strings.Contains(errOut, "-insecure-http") {
			t.Errorf("sumd %s: exit %d\n%s\nwant 2, refusing the credentials over plain HTTP and naming -insecure-http", strings.Join(args, " "), statusOf(err), errOut)
		}
	}
	for _, spec := range []string{"", "none"} {
		if _, err := adminClientOf(remote, "", spec, config.ClientCert{}, false); err != nil {
			t.Errorf("-auth %q over plain HTTP: %v, want no refusal (no credentials are sent)", spec, err)
		}
	}
	c, err := adminClientOf(remote, "", auth, config.ClientCert{}, true)
	if err != nil {
		t.Fatalf("-auth with -insecure-http: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, remote+"/admin/add", nil)
	if err := c.Auth(req); err != nil || req.Header.Get("Authorization") == "" {
		t.Errorf("-auth with -insecure-http: Auth = %v, Authorization %q; want the credentials sent", err, req.Header.Get("Authorization"))
	}
}

// TestAddRemotePresent: sumd add -server says "already recorded" of a
// version the server answers was recorded before the request, as the
// local sumd add does, where it said "recorded" whatever the answer; an
// answer without "present" (an older server's) is "recorded".
func TestAddRemotePresent(t *testing.T) {
	for answer, want := range map[string]string{
		`{"id":3,"record":"r","tree_size":4,"present":true}`: "example.com/m@v1.0.0 already recorded, with the same hashes, as record 3 (tree size 4)\n",
		`{"id":3,"record":"r","tree_size":4}`:                "example.com/m@v1.0.0 recorded as record 3 (tree size 4)\n",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, answer+"\n")
		}))
		var out strings.Builder
		err := addRemote(&config.Add{Server: srv.URL, ClientAuth: config.ClientAuth{Auth: "none"}}, []string{"example.com/m@v1.0.0"}, &out)
		srv.Close()
		if err != nil || out.String() != want {
			t.Errorf("answer %s: %v, output %q; want %q", answer, err, out.String(), want)
		}
	}
}
