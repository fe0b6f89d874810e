package serve

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestReadyAfterFatal: once a commit fails in doubt, the sequencer stops
// and the server is stopping; /healthz's readiness says so (503), though
// Signed still answers the last head.
func TestReadyAfterFatal(t *testing.T) {
	skey, _, err := tlog.GenerateKey("ready.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	store := tlog.NewMemStore()
	l, err := tlog.OpenStore(store, tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ready := logReady(l)
	ctx := context.Background()
	if err := ready(ctx); err != nil {
		t.Fatalf("a new log is not ready: %v", err)
	}
	store.SetHooks(tlog.MemHooks{BeforeCommit: func(*tlog.Batch) error { return errors.New("disk said nothing") }})
	h := "h1:" + strings.Repeat("A", 43) + "="
	if _, err := l.Add(ctx, gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: h, GoMod: h}); !errors.Is(err, tlog.ErrFatal) {
		t.Fatalf("Add with an ambiguous commit = %v, want ErrFatal", err)
	}
	if _, err := l.Signed(ctx); err != nil {
		t.Fatalf("Signed after the stop = %v (the test assumes it still answers)", err)
	}
	if err := ready(ctx); !errors.Is(err, errLogStopped) {
		t.Errorf("ready after a fatal commit = %v, want %v", err, errLogStopped)
	}
}

// TestReadyHidesMirrorName: a mirror that holds no signed head yet is not
// ready; /healthz answers everyone, and a client that may not read the
// status (behind credentials, without an auditor's) learns the problem's
// kind only, never the mirrored database's name, as degraded hides it.
func TestReadyHidesMirrorName(t *testing.T) {
	const name = "sum.private-corp.example"
	skey, _, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	ctx := context.Background()
	store := tlog.NewMemStore()
	if err := store.Create(ctx, tlog.Meta{Name: name, VKeys: []string{key.VerifierKey()}, Mirror: true}, nil); err != nil {
		t.Fatal(err)
	}
	l, err := tlog.OpenStore(store, tlog.Options{VerifierKeys: []string{key.VerifierKey()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ready := logReady(l)
	anon := access.NewContext(ctx, &access.Principal{Name: "anonymous", Role: access.RoleNone})
	err = ready(anon)
	if err == nil || strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "no signed head") {
		t.Errorf("ready to a client without a role = %v, want the mirror's missing head without its name %s", err, name)
	}
	auditor := access.NewContext(ctx, &access.Principal{Name: "ops", Role: access.Auditor})
	if err := ready(auditor); err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("ready to an auditor = %v, want the mirror's name %s", err, name)
	}
}
