package oci

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testlog"
)

func TestParseKey(t *testing.T) {
	pub := newKey(t, 0).pub
	for spec, scope := range map[string]string{
		pub:                                   "",
		"registry.example.com=" + pub:         "registry.example.com",
		"registry.example.com/gomod/a=" + pub: "registry.example.com/gomod/a",
		"127.0.0.1:5000/gomod=" + pub:         "127.0.0.1:5000/gomod",
	} {
		k, err := ParseKey(spec)
		if err != nil || k.File != pub || k.Scope != scope {
			t.Errorf("ParseKey(%q) = %+v, %v; want file %s, scope %q", spec, k, err, pub, scope)
		}
	}
	for spec, want := range map[string]string{
		"=" + pub:                             "HOST[:PORT][/PATH]=FILE",
		"registry.example.com/gomod=":         "HOST[:PORT][/PATH]=FILE",
		"https://registry.example.com=" + pub: "HOST[:PORT][/PATH]=FILE",
		"registry.example.com/GoMod=" + pub:   "lower-case",
		"registry.example.com/gomod/=" + pub:  "component",
		"registry.example.com=nope.pub":       "failed to read cosign public key",
	} {
		if _, err := ParseKey(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKey(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
}

// TestSyncKeyScope: a key bound to a repository path verifies artifacts
// there and under it only; one bound to nothing, artifacts of every source.
func TestSyncKeyScope(t *testing.T) {
	e := newSyncEnv(t, true)
	bound, err := ParseKey(e.src.String() + "/example.com/a=" + e.key.pub)
	if err != nil {
		t.Fatal(err)
	}
	free := e.other.public(t)
	mod := func(path string) *Module {
		return testModule(t, module.Version{Path: path, Version: "v1.0.0"}, map[string]string{"go.mod": "module " + path + "\n\ngo 1.21\n", "x.go": "package x\n"})
	}
	a, aSub, ab, b, c := mod("example.com/a"), mod("example.com/a/sub"), mod("example.com/ab"), mod("example.com/b"), mod("example.com/c")
	e.push(t, a, e.key.sv)
	e.push(t, aSub, e.key.sv)
	e.push(t, ab, e.key.sv) // not under example.com/a/
	e.push(t, b, e.key.sv)
	e.push(t, c, e.other.sv)
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{bound, free}, Log: e.log,
		Remote: testRemote, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts[Recorded] != 3 || r.Counts[BadSignature] != 2 || len(r.Counts) != 2 {
		t.Errorf("outcomes %v, want 3 recorded and 2 bad_signature\n%s", r.Counts, e.logs)
	}
	for _, m := range []*Module{a, aSub, c} {
		e.wantRecorded(t, m)
	}
	for _, m := range []*Module{ab, b} {
		if _, ok := e.log.get(m.Version.String()); ok {
			t.Errorf("recorded %s, signed by a key bound to another repository", m.Version)
		}
	}
	if !strings.Contains(e.logs.String(), "bound to other repositories") {
		t.Errorf("the bad_signature lines do not say the key is bound elsewhere:\n%s", e.logs)
	}
}

// TestKeyScopeOutsideSources: a key bound where no source reads would
// verify nothing, which is a mistake in the configuration.
func TestKeyScopeOutsideSources(t *testing.T) {
	e := newSyncEnv(t, true)
	for _, scope := range []string{"other.example.com", e.reg.host + "/elsewhere", e.reg.host + "/gomodx"} {
		k, err := ParseKey(scope + "=" + e.key.pub)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewSyncer(Options{Sources: []*Source{e.src}, Keys: []*PublicKey{k}, Log: e.log})
		if err == nil || !strings.Contains(err.Error(), "no -registry source reads") {
			t.Errorf("NewSyncer with a key bound to %s: %v, want it refused", scope, err)
		}
	}
	for _, scope := range []string{e.reg.host, e.reg.host + "/gomod", e.reg.host + "/gomod/example.com"} {
		k, err := ParseKey(scope + "=" + e.key.pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewSyncer(Options{Sources: []*Source{e.src}, Keys: []*PublicKey{k}, Log: e.log}); err != nil {
			t.Errorf("NewSyncer with a key bound to %s: %v", scope, err)
		}
	}
}

// TestWarnUnboundBesideBound: an unbound key beside bound ones (a list
// written HOST/PATH=a.pub,b.pub, whose second value is unbound) is warned
// about at start, since it verifies every source; keys all bound, or all
// unbound, are not.
func TestWarnUnboundBesideBound(t *testing.T) {
	e := newSyncEnv(t, true)
	bound, err := ParseKey(e.reg.host + "/gomod=" + e.key.pub)
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := ParseKey(e.other.pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		keys []*PublicKey
		warn bool
	}{
		{[]*PublicKey{bound, unbound}, true},
		{[]*PublicKey{bound}, false},
		{[]*PublicKey{unbound}, false},
	} {
		logs := new(testlog.Buffer)
		if _, err := NewSyncer(Options{Sources: []*Source{e.src}, Keys: c.keys, Log: e.log, Logger: slog.New(slog.NewTextHandler(logs, nil))}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "unbound="+e.other.pub); got != c.warn {
			t.Errorf("%d keys: warned %v, want %v\n%s", len(c.keys), got, c.warn, logs)
		}
	}
}
