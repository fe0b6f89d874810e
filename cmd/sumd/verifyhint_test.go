package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/audit"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestVerifyDamagedHint: a server's answer that the data asked for is
// damaged in its database (sumdbclient.ErrDamaged) stopped sumd verify
// with "check -url and that the server is reachable" and exit status 2
// (nothing concluded); it is a finding about the database: exit status 1,
// and a hint saying so.
func TestVerifyDamagedHint(t *testing.T) {
	err := &audit.FetchError{Path: "/tile/8/data/000", Status: 500, Err: fmt.Errorf("500 Internal Server Error: %w", sumdbclient.ErrDamaged)}
	var ce *cliError
	if !errors.As(cannotRun(err, 0), &ce) || ce.code != 1 || strings.Contains(ce.hint, "check -url") || !strings.Contains(ce.hint, "damaged") {
		t.Errorf("cannotRun(%v) = exit %d, hint %q; want exit 1 and a hint about the damaged database", err, ce.code, ce.hint)
	}
}

// TestVerifyOfflineHint: a mirror's 404 saying it cannot reach its origin
// (sumdbclient.ErrOffline) is an outage (exit status 2), with a hint that
// says the mirror is offline, not to check -url.
func TestVerifyOfflineHint(t *testing.T) {
	err := &audit.FetchError{Path: "/lookup/example.com/m@v1.0.0", Status: 404, Err: fmt.Errorf("404 Not Found: %w", sumdbclient.ErrOffline)}
	var ce *cliError
	if !errors.As(cannotRun(err, 0), &ce) || ce.code != 2 || !strings.Contains(ce.hint, "cannot reach its origin") {
		t.Errorf("cannotRun(%v) = exit %d, hint %q; want exit 2 and a hint about the offline mirror", err, ce.code, ce.hint)
	}
}

// TestMirrorDamagedHint: a round that failed on the origin's answer that
// data is damaged in its database (sumdbclient.ErrDamaged) said "check
// -origin and that the origin is reachable"; the origin was reached, and
// its data is at fault.
func TestMirrorDamagedHint(t *testing.T) {
	err := &sumdbclient.FetchError{Path: "/tile/8/data/000", Status: 500, Err: fmt.Errorf("500 Internal Server Error: %w", sumdbclient.ErrDamaged)}
	var ce *cliError
	if !errors.As(mirrorError(err, "mirror.db"), &ce) || strings.Contains(ce.hint, "reachable") || !strings.Contains(ce.hint, "damaged") {
		t.Errorf("mirrorError(%v) = hint %q; want a hint about the origin's damaged database", err, ce.hint)
	}
}

// TestMirrorNotProtocolHint: a round that failed on an answer that is not
// the protocol's at all (a *sumdbclient.BodyError: a proxy's page at
// /latest) or larger than the protocol sends (sumdbclient.ErrTooLarge)
// said "check -origin and that the origin is reachable"; the origin, or
// something between, was reached and answered something else.
func TestMirrorNotProtocolHint(t *testing.T) {
	for _, err := range []error{
		sumdbclient.NotProtocol("/latest", "a signed note", []byte("<!DOCTYPE html><html>Sign in</html>"), true),
		&sumdbclient.FetchError{Path: "/tile/8/0/000", Status: 200, Err: fmt.Errorf("%w: more than the 8192 bytes allowed", sumdbclient.ErrTooLarge)},
	} {
		var ce *cliError
		if !errors.As(mirrorError(err, "mirror.db"), &ce) || ce.code != 2 || strings.Contains(ce.hint, "reachable") ||
			!strings.Contains(ce.hint, "captive portal") || !strings.Contains(ce.hint, "not the checksum database protocol") {
			t.Errorf("mirrorError(%v) = exit %d, hint %q; want exit 2 and a hint that the answer is not the protocol's", err, ce.code, ce.hint)
		}
	}
}

// TestVerifyNotProtocolHint: sumd verify stopped by an answer that is not
// the protocol's at all (a *sumdbclient.BodyError: a proxy's page at
// /latest) or larger than the protocol sends said "check -url and that the
// server is reachable"; the server, or something between, was reached and
// answered something else.
func TestVerifyNotProtocolHint(t *testing.T) {
	for _, err := range []error{
		sumdbclient.NotProtocol("/latest", "a signed note", []byte("<!DOCTYPE html><html>Sign in</html>"), false),
		&audit.FetchError{Path: "/latest", Status: 200, Err: fmt.Errorf("%w: more than the 16384 bytes allowed", sumdbclient.ErrTooLarge)},
	} {
		var ce *cliError
		if !errors.As(cannotRun(err, 0), &ce) || ce.code != 2 || strings.Contains(ce.hint, "reachable") ||
			!strings.Contains(ce.hint, "captive portal") || !strings.Contains(ce.hint, "not the checksum database protocol") {
			t.Errorf("cannotRun(%v) = exit %d, hint %q; want exit 2 and a hint that the answer is not the protocol's", err, ce.code, ce.hint)
		}
	}
}

// TestVerifyKeyNamesSource: a verifier key sumd verify cannot use, set by
// SUMD_KEY or the config file, was reported as -key's alone, sending the
// operator to a command line that has no -key; the error now says, as
// the config layer's own errors do, which variable or file set it.
func TestVerifyKeyNamesSource(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "sumd.yaml")
	writeFile(t, conf, []byte("key: garbage\n"))
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"SUMD_KEY=garbage"}, nil, "key is set by SUMD_KEY"},
		{nil, []string{"-config", conf}, "key is set by the config file " + conf},
		{nil, []string{"-key", "garbage"}, ""},
	} {
		cmd := sumdCommand(t, append([]string{"verify", "-url", "http://127.0.0.1:1"}, tc.args...)...)
		cmd.Env = childEnv(t, tc.env...)
		var stderr bytes.Buffer
		cmd.Dir, cmd.Stderr = dir, &stderr
		err := cmd.Run()
		if err == nil || !strings.Contains(stderr.String(), "neither a verifier key nor a readable file") {
			t.Fatalf("sumd verify %q %q: %v\n%s\nwant the key refused", tc.env, tc.args, err, stderr.String())
		}
		if got := strings.Contains(stderr.String(), "is set by"); tc.want == "" && got || tc.want != "" && !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("sumd verify %q %q:\n%s\nwant %q", tc.env, tc.args, stderr.String(), cmp.Or(tc.want, "no line saying where -key was set"))
		}
	}
}

// TestVerifySincePastEndHint: -since past the end of the log is the
// operator's to fix (exit status 2), with a hint about -since rather than
// the generic "fix the cause above".
func TestVerifySincePastEndHint(t *testing.T) {
	err := fmt.Errorf("%w: it is record 5000, and the signed tree holds 300 records", audit.ErrSincePastEnd)
	var ce *cliError
	if !errors.As(cannotRun(err, 0), &ce) || ce.code != 2 || !strings.Contains(ce.hint, "give -since") {
		t.Errorf("cannotRun(%v) = exit %d, hint %q; want exit 2 and a hint about -since", err, ce.code, ce.hint)
	}
}
