package oci

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/tlog"
)

// syncEnv is a registry, two cosign keys (only the first trusted), and a
// log that also keeps the sync state.
type syncEnv struct {
	reg        *testRegistry
	src        *Source
	key, other *testKey
	log        *fakeLog
	logs       *testlog.Buffer
	// listTimeout, if set, is hostileSync's ListTimeout in place of 2s,
	// and its response header timeout is 10s in place of 200ms: for a
	// test whose bound is not the time (a loaded machine took over 200ms
	// to answer one of 1,000 catalog pages).
	listTimeout time.Duration
	// maxZipSize, if set, is syncKeys' MaxZipSize in place of the default.
	maxZipSize int64
	// maxPassBytes, if set, is syncKeys' MaxPassBytes, and metrics its
	// Metrics.
	maxPassBytes int64
	metrics      *Metrics
}

func newSyncEnv(t *testing.T, referrers bool) *syncEnv {
	t.Helper()
	reg := newTestRegistry(t, referrers)
	return &syncEnv{
		reg: reg, src: reg.source(t, "gomod"),
		key: newKey(t, 0), other: newKey(t, 1),
		log:  newFakeLog(),
		logs: new(testlog.Buffer),
	}
}

// testRemote reads no credentials: the test registry needs none.
var testRemote = Remote{Keychain: authn.NewMultiKeychain()}

func (e *syncEnv) sync(t *testing.T) *Report {
	t.Helper()
	return e.syncKeys(t, e.key)
}

// syncKeys runs a pass trusting keys in place of the env's first key.
func (e *syncEnv) syncKeys(t *testing.T, keys ...*testKey) *Report {
	t.Helper()
	var pub []*PublicKey
	for _, k := range keys {
		pub = append(pub, k.public(t))
	}
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: pub, Log: e.log,
		Remote: testRemote, MaxZipSize: e.maxZipSize,
		MaxPassBytes: e.maxPassBytes, Metrics: e.metrics,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatalf("Sync: %v\n%s", err, e.logs)
	}
	return r
}

// push publishes mod under the env's prefix, signed by sv if not nil.
func (e *syncEnv) push(t *testing.T, mod *Module, sv signature.SignerVerifier) *Pushed {
	t.Helper()
	p, err := Push(context.Background(), e.src, mod, PushOptions{Remote: testRemote, Signer: sv})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wantOutcome checks that the pass examined exactly one artifact, with
// outcome o, and logged it in one line.
func (e *syncEnv) wantOutcome(t *testing.T, r *Report, o Outcome) {
	t.Helper()
	if r.Counts[o] != 1 || len(r.Counts) != 1 {
		t.Errorf("outcomes %v, want one %s\n%s", r.Counts, o, e.logs)
	}
	if n := strings.Count(e.logs.String(), "outcome="+string(o)); n != 1 {
		t.Errorf("%d log lines with outcome=%s, want 1:\n%s", n, o, e.logs)
	}
}

func (e *syncEnv) wantRecorded(t *testing.T, mod *Module) {
	t.Helper()
	want := gosum.Record{Path: mod.Version.Path, Version: mod.Version.Version, Hash: mod.Sums.Hash, GoMod: mod.Sums.GoMod}
	if got, ok := e.log.get(want.Key()); !ok || got != want {
		t.Errorf("log holds %+v (%v), want %+v", got, ok, want)
	}
}

func forReferrers(t *testing.T, f func(t *testing.T, referrers bool)) {
	t.Run("referrers-api", func(t *testing.T) { f(t, true) })
	t.Run("fallback-tag", func(t *testing.T) { f(t, false) })
}

func TestSyncClassicSignature(t *testing.T) {
	e := newSyncEnv(t, false)
	mod := simpleModule(t, "v1.0.0")
	e.push(t, mod, e.key.sv)
	r := e.sync(t)
	e.wantOutcome(t, r, Recorded)
	e.wantRecorded(t, mod)
	if !r.OK() || !strings.Contains(e.logs.String(), "signature=cosign") {
		t.Errorf("report %+v, logs:\n%s", r, e.logs)
	}
}

func TestSyncBundleSignature(t *testing.T) {
	forReferrers(t, func(t *testing.T, referrers bool) {
		e := newSyncEnv(t, referrers)
		mod := simpleModule(t, "v1.1.0")
		p := e.push(t, mod, nil)
		signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
		r := e.sync(t)
		e.wantOutcome(t, r, Recorded)
		e.wantRecorded(t, mod)
		if !strings.Contains(e.logs.String(), "signature=bundle") {
			t.Errorf("want the bundle to be what verified:\n%s", e.logs)
		}
	})
}

// TestSyncIdempotent: a second pass skips what the first recorded, from
// the state; a lost state costs a re-read, not a record.
func TestSyncIdempotent(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	e.sync(t)
	r := e.sync(t)
	if r.Skipped != 1 || len(r.Counts) != 0 {
		t.Errorf("second pass: %+v, want the artifact skipped as recorded", r)
	}
	e.log.aux = map[string][]byte{}
	r = e.sync(t)
	if r.Counts[Present] != 1 || e.log.size() != 1 {
		t.Errorf("pass without state: %+v, log size %d; want the artifact found already present", r, e.log.size())
	}
}

// TestSyncResumes: a pass stopped after recording one repository's version
// has saved its progress; the next pass carries on from there.
func TestSyncResumes(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	other := module.Version{Path: "example.com/n", Version: "v1.0.0"}
	e.push(t, testModule(t, other, map[string]string{"go.mod": "module example.com/n\n"}), e.key.sv)
	ctx, cancel := context.WithCancel(context.Background())
	e.log.afterAdd = cancel // stop right after the first record
	s, err := NewSyncer(Options{Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log, Remote: testRemote})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx); !errors.Is(err, context.Canceled) || e.log.size() != 1 {
		t.Fatalf("stopped pass: %v, log size %d; want context.Canceled after one record", err, e.log.size())
	}
	e.log.afterAdd = nil
	r := e.sync(t)
	if r.Skipped != 1 || r.Counts[Recorded] != 1 || e.log.size() != 2 {
		t.Errorf("resumed pass: %+v, log size %d; want the first skipped and the second recorded", r, e.log.size())
	}
}

// TestSyncStaleState: a state remembering a version the log lacks does not
// make sync skip it.
func TestSyncStaleState(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	e.sync(t)
	e.log = e.log.withoutRecords()
	if r := e.sync(t); r.Counts[Recorded] != 1 {
		t.Errorf("pass with a stale state: %+v, want the version recorded again", r)
	}
}

func TestSyncState(t *testing.T) {
	e := newSyncEnv(t, true)
	p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	e.sync(t)
	s, err := LoadState(context.Background(), e.log)
	if err != nil {
		t.Fatal(err)
	}
	repo := p.Ref.Repository.String()
	if mv, ok := s.recorded(repo, "v1.0.0", p.Ref.DigestStr()); !ok || mv != "example.com/m@v1.0.0" {
		t.Errorf("state of %s %s = %q, %v; want example.com/m@v1.0.0", repo, p.Ref.DigestStr(), mv, ok)
	}
}

func TestSyncUnsigned(t *testing.T) {
	forReferrers(t, func(t *testing.T, referrers bool) {
		e := newSyncEnv(t, referrers)
		e.push(t, simpleModule(t, "v1.0.0"), nil)
		r := e.sync(t)
		e.wantOutcome(t, r, Unsigned)
		if e.log.size() != 0 || !r.OK() {
			t.Errorf("unsigned artifact: log size %d, report %+v", e.log.size(), r)
		}
		// Not remembered: signing it later gets it recorded.
		p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
		if r := e.sync(t); r.Counts[Recorded] != 1 {
			t.Errorf("after signing %s: %+v, want it recorded", p.Ref, r)
		}
	})
}

func TestSyncWrongKey(t *testing.T) {
	t.Run("classic", func(t *testing.T) {
		e := newSyncEnv(t, false)
		e.push(t, simpleModule(t, "v1.0.0"), e.other.sv)
		e.wantOutcome(t, e.sync(t), BadSignature)
	})
	forReferrers(t, func(t *testing.T, referrers bool) {
		e := newSyncEnv(t, referrers)
		p := e.push(t, simpleModule(t, "v1.0.0"), nil)
		signBundle(t, p.Ref, e.other.sv, CosignSignPredicateType)
		e.wantOutcome(t, e.sync(t), BadSignature)
		if e.log.size() != 0 {
			t.Error("recorded an artifact signed with an untrusted key")
		}
	})
}

// TestSyncOtherPredicate: an attestation made with the trusted key (an
// SBOM, say) is not a signature of the artifact.
func TestSyncOtherPredicate(t *testing.T) {
	e := newSyncEnv(t, true)
	p := e.push(t, simpleModule(t, "v1.0.0"), nil)
	signBundle(t, p.Ref, e.key.sv, "https://spdx.dev/Document")
	e.wantOutcome(t, e.sync(t), BadSignature)
}

// TestSyncSignatureOfAnotherArtifact: a valid signature copied from
// another artifact names the other digest in its payload.
func TestSyncSignatureOfAnotherArtifact(t *testing.T) {
	e := newSyncEnv(t, false)
	signed := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	unsigned := e.push(t, simpleModule(t, "v1.0.1"), nil)
	sigImg, err := remote.Image(signed.Signature, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	stolen := unsigned.Ref.Context().Tag(strings.Replace(unsigned.Ref.DigestStr(), ":", "-", 1) + ".sig")
	if err := remote.Write(stolen, sigImg); err != nil {
		t.Fatal(err)
	}
	r := e.sync(t)
	if r.Counts[BadSignature] != 1 || r.Counts[Recorded] != 1 {
		t.Errorf("outcomes %v, want v1.0.0 recorded and v1.0.1 refused\n%s", r.Counts, e.logs)
	}
	if _, ok := e.log.get("example.com/m@v1.0.1"); ok {
		t.Error("recorded v1.0.1 on the strength of v1.0.0's signature")
	}
}

func TestSyncTamperedLayer(t *testing.T) {
	for _, layer := range []string{"zip", "go.mod"} {
		t.Run(layer, func(t *testing.T) {
			e := newSyncEnv(t, true)
			p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			a := manifestOf(t, p)
			if layer == "go.mod" {
				e.reg.blobs.tamper(a.Mod.Digest, []byte("module example.com/evil\n"))
			} else {
				// Same size, one byte changed: only the digest tells.
				zip := readFile(t, simpleModule(t, "v1.0.0").Zip)
				zip[len(zip)/2] ^= 1
				e.reg.blobs.tamper(a.Zip.Digest, zip)
			}
			r := e.sync(t)
			e.wantOutcome(t, r, Tampered)
			if e.log.size() != 0 {
				t.Error("recorded a tampered artifact")
			}
		})
	}
}

// manifestOf reads back the artifact Push published.
func manifestOf(t *testing.T, p *Pushed) *Artifact {
	t.Helper()
	desc, err := remote.Get(p.Ref, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseManifest(desc.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSyncConflict(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	old := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: mod.Sums.GoMod}
	if _, err := e.log.Add(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	e.push(t, mod, e.key.sv)
	r := e.sync(t)
	e.wantOutcome(t, r, Conflict)
	var conflict *tlog.ConflictError
	if r.OK() || len(r.Conflicts) != 1 || !errors.As(r.Conflicts[0], &conflict) || conflict.Recorded != old {
		t.Errorf("report %+v, want the conflict with the recorded version", r)
	}
	if got, _ := e.log.get(old.Key()); got != old {
		t.Errorf("log holds %+v after a conflict, want %+v", got, old)
	}
	// The place, for a status that shows no registry.
	want := Place{Outcome: Conflict, Registry: e.reg.host, Repository: "gomod/example.com/m", Tag: "v1.0.0"}
	if len(r.Places) != 1 || r.Places[0] != want || r.Places[0].Path() != "gomod/example.com/m:v1.0.0" {
		t.Errorf("places %+v, want %+v", r.Places, want)
	}
}

// TestSyncMisplaced: a signed artifact copied to another tag or repository
// is refused, though its signature is valid: the name must agree with
// the annotations the signature covers.
func TestSyncMisplaced(t *testing.T) {
	for _, where := range []string{"gomod/example.com/m:v1.0.1", "gomod/example.com/other:v1.0.0"} {
		t.Run(where, func(t *testing.T) {
			e := newSyncEnv(t, false)
			p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			e.copyArtifact(t, p, where)
			r := e.sync(t)
			if r.Counts[Malformed] != 1 || r.Counts[Recorded] != 1 {
				t.Errorf("outcomes %v, want the original recorded and the copy malformed\n%s", r.Counts, e.logs)
			}
			if !strings.Contains(e.logs.String(), "want "+e.reg.host) && !strings.Contains(e.logs.String(), "want gomod/example.com/m:v1.0.0") {
				t.Errorf("log does not say where the artifact belongs:\n%s", e.logs)
			}
		})
	}
}

// copyArtifact copies p's manifest, blobs and signature to repo:tag.
func (e *syncEnv) copyArtifact(t *testing.T, p *Pushed, where string) {
	t.Helper()
	o := remote.WithAuthFromKeychain(testRemote.keychain())
	dst := e.reg.host + "/" + where
	img, err := remote.Image(p.Ref, o)
	if err != nil {
		t.Fatal(err)
	}
	tag := mustTag(t, dst)
	if err := remote.Write(tag, img, o); err != nil {
		t.Fatal(err)
	}
	sig, err := remote.Image(p.Signature, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag.Context().Tag(p.Signature.TagStr()), sig, o); err != nil {
		t.Fatal(err)
	}
}

func TestSyncIgnoresOtherArtifacts(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	// A cosign signature image under a version tag is no module artifact.
	p := e.push(t, simpleModule(t, "v1.0.1"), e.key.sv)
	sig, err := remote.Image(p.Signature, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(p.Tag.Context().Tag("v1.0.1"), sig); err != nil {
		t.Fatal(err)
	}
	r := e.sync(t)
	if r.Counts[Ignored] != 1 || r.Counts[Recorded] != 1 || !r.OK() {
		t.Errorf("outcomes %v, want one recorded and one ignored\n%s", r.Counts, e.logs)
	}
}

func TestSyncInvalidModule(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	mod.GoMod = []byte("module example.com/not-m\n") // differs from the zip's go.mod
	e.push(t, mod, e.key.sv)
	e.wantOutcome(t, e.sync(t), Invalid)
}

// TestSyncInvalidModuleManyEntries: x/mod's CheckZip names every bad
// entry, so a zip layer of thousands of entries outside the module made a
// log line of megabytes. It is capped and says how much it left out.
func TestSyncInvalidModuleManyEntries(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 4000 {
		if _, err := zw.Create(fmt.Sprintf("other@v1.0.0/%s/%d.go", strings.Repeat("x", 900), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	mod.Zip = filepath.Join(t.TempDir(), "bad.zip")
	if err := os.WriteFile(mod.Zip, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.push(t, mod, e.key.sv)
	e.wantOutcome(t, e.sync(t), Invalid)
	if n := len(e.logs.String()); n > 16<<10 || !strings.Contains(e.logs.String(), "more bytes)") {
		t.Errorf("logs of %d bytes, want the reasons capped:\n%.2000s", n, e.logs)
	}
}

func TestSyncSizeLimit(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
		Remote: testRemote, MaxZipSize: 100,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(context.Background())
	if err != nil || r.Counts[Invalid] != 1 || !strings.Contains(e.logs.String(), "larger than the limit of 100 bytes") {
		t.Errorf("Sync = %+v, %v; want the zip refused as too large\n%s", r, err, e.logs)
	}
}

func TestSyncCatalogPrefix(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	elsewhere := &Source{Registry: e.src.Registry, Prefix: "other"}
	if _, err := Push(context.Background(), elsewhere, simpleModule(t, "v1.0.1"), PushOptions{Remote: testRemote, Signer: e.key.sv}); err != nil {
		t.Fatal(err)
	}
	r := e.sync(t)
	if r.Counts[Recorded] != 1 {
		t.Errorf("outcomes %v, want only the artifact under gomod/ recorded", r.Counts)
	}
	if _, ok := e.log.get("example.com/m@v1.0.1"); ok {
		t.Error("synced a repository outside the prefix")
	}
}

func TestSyncExplicitRepositories(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	sources, err := ParseSources([]string{e.reg.host + "/gomod"}, []string{e.reg.host + "/gomod/example.com/absent"})
	if err != nil {
		t.Fatal(err)
	}
	e.src = sources[0]
	r := e.sync(t)
	// Only the named repository is read, and it does not exist yet: not
	// a failure (a team's repository listed before its first release
	// must not degrade the server until then), but a warning naming it.
	absent := e.reg.host + "/gomod/example.com/absent"
	if r.Counts[Recorded] != 0 || !r.OK() {
		t.Errorf("report %+v, want nothing read and no failure", r)
	}
	if !strings.Contains(e.logs.String(), "level=WARN msg=\"OCI sync: the repository does not exist (yet)") || !strings.Contains(e.logs.String(), absent) {
		t.Errorf("log lacks the absent repository:\n%s", e.logs)
	}
}

func TestReportJSONState(t *testing.T) {
	// The state is JSON an operator can read.
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	e.sync(t)
	var v struct {
		Version      int
		Repositories map[string]map[string]struct{ Digest, Module string }
	}
	data := e.log.aux[stateKey]
	if err := json.Unmarshal(data, &v); err != nil || v.Version != 1 || len(v.Repositories) != 1 {
		t.Errorf("state %s: %v", data, err)
	}
}

// checkedLog is a fakeLog behind a policy like sumd serve's cross-check:
// Add refuses a version whose hashes differ from the reference's.
type checkedLog struct {
	*fakeLog
	reference map[string]gosum.Record
}

func (c *checkedLog) Add(ctx context.Context, recs ...gosum.Record) ([]int64, error) {
	for _, r := range recs {
		if want, ok := c.reference[r.Key()]; ok && want != r {
			return nil, fmt.Errorf("%w by the cross-check: %s: checksum mismatch", ErrRefused, r.Key())
		}
	}
	return c.fakeLog.Add(ctx, recs...)
}

// TestSyncRefused: a signed artifact whose hashes the recorder's policy
// refuses is reported as refused, every pass, and recorded nowhere; an
// honest one beside it is recorded.
func TestSyncRefused(t *testing.T) {
	e := newSyncEnv(t, true)
	forged, honest := simpleModule(t, "v1.0.0"), simpleModule(t, "v1.1.0")
	genuine := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: forged.Sums.GoMod}
	log := &checkedLog{fakeLog: e.log, reference: map[string]gosum.Record{genuine.Key(): genuine}}
	e.push(t, forged, e.key.sv)
	e.push(t, honest, e.key.sv)
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: log,
		Remote: testRemote, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for pass := range 2 {
		r, err := s.Sync(context.Background())
		if err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		if r.Counts[Refused] != 1 || r.Counts[Failed] != 0 || len(r.Refused) != 1 || !errors.Is(r.Refused[0], ErrRefused) || r.OK() {
			t.Errorf("pass %d: report %+v, want one refused artifact\n%s", pass, r, e.logs)
		}
		if honest := r.Counts[Recorded] + r.Skipped; honest != 1 {
			t.Errorf("pass %d: outcomes %v, %d unchanged: want the honest version recorded, then unchanged", pass, r.Counts, r.Skipped)
		}
	}
	if got, ok := e.log.get(genuine.Key()); ok {
		t.Errorf("log holds the refused version: %+v", got)
	}
	e.wantRecorded(t, honest)
	if n := strings.Count(e.logs.String(), "outcome=refused"); n != 2 || !strings.Contains(e.logs.String(), "checksum mismatch") {
		t.Errorf("%d log lines with outcome=refused, want 2 naming the reason:\n%s", n, e.logs)
	}
}

// TestSyncNotARegistry: a host that is not a registry, or does not answer
// as one, is a failure of the pass, counted in the metrics, and not a
// repository that does not exist yet: only a registry's distribution error
// (NAME_UNKNOWN, or a 404 with an error body) on the tag list, after /v2/
// answered, says the repository is absent.
func TestSyncNotARegistry(t *testing.T) {
	page := func(w http.ResponseWriter, code int) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<html><body>%d %s</body></html>", code, http.StatusText(code))
	}
	for name, h := range map[string]http.HandlerFunc{
		// Not found on /v2/ itself: a web server, a proxy's default vhost.
		"404 everywhere": func(w http.ResponseWriter, r *http.Request) { page(w, http.StatusNotFound) },
		// A web server with a page at /v2/ and 404 pages elsewhere.
		"web server": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				page(w, http.StatusOK)
				return
			}
			page(w, http.StatusNotFound)
		},
		// A 404 without a distribution error body says nothing of the
		// repository.
		"bare 404": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
				return
			}
			w.WriteHeader(http.StatusNotFound)
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			host := strings.TrimPrefix(srv.URL, "http://")
			sources, err := ParseSources([]string{host + "/gomod"}, []string{host + "/gomod/example.com/m"})
			if err != nil {
				t.Fatal(err)
			}
			logs := new(testlog.Buffer)
			m := NewMetrics(prometheus.NewRegistry(), time.Minute)
			s, err := NewSyncer(Options{
				Sources: sources, Keys: []*PublicKey{newKey(t, 0).public(t)}, Log: newFakeLog(),
				Remote: testRemote, Metrics: m, Logger: slog.New(slog.NewTextHandler(logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Sync(context.Background())
			if err != nil {
				t.Fatalf("Sync: %v\n%s", err, logs)
			}
			if r.OK() || len(r.Failures) != 1 || !strings.Contains(r.Failures[0].Error(), host+"/gomod/example.com/m") {
				t.Errorf("report %+v, want the repository failed\n%s", r, logs)
			}
			if strings.Contains(logs.String(), "does not exist (yet)") || !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("logged as an absent repository, or not as an error:\n%s", logs)
			}
			if failed := testutil.ToFloat64(m.passes.WithLabelValues("failed")); failed != 1 {
				t.Errorf("%v failed passes counted, want 1", failed)
			}
		})
	}
}

// TestSyncRequestsPerTag: a pass over tags recorded by an earlier one
// costs one HEAD request per tag, as docs/oci.md says, not a new
// handshake with the registry (GET /v2/, then its token service) for each:
// go-containerregistry starts one for every call not given a Puller to
// reuse.
func TestSyncRequestsPerTag(t *testing.T) {
	e := newSyncEnv(t, true)
	const n = 6
	for i := range n {
		e.push(t, simpleModule(t, fmt.Sprintf("v1.0.%d", i)), e.key.sv)
	}
	if r := e.sync(t); r.Counts[Recorded] != n {
		t.Fatalf("first pass %+v, want %d recorded", r, n)
	}
	var pings, heads atomic.Int64
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.URL.Path == "/v2/":
			pings.Add(1)
		case r.Method == http.MethodHead:
			heads.Add(1)
		}
		return false
	})
	if r := e.sync(t); r.Skipped != n {
		t.Fatalf("second pass %+v, want %d skipped", r, n)
	}
	if pings.Load() > 3 || heads.Load() != n {
		t.Errorf("second pass sent %d GET /v2/ and %d HEAD requests for %d tags, want at most 3 (the catalog's, the repository's) and %d", pings.Load(), heads.Load(), n, n)
	}
}

// TestSyncRetagged: a recorded version's tag moved to other content that no
// configured key signed (unsigned, or signed with another key) is a re-tag
// of a recorded version, reported as a conflict is, with its own outcome:
// not the plain unsigned or bad_signature of a release awaiting its
// signature, which would pass for a healthy pass.
func TestSyncRetagged(t *testing.T) {
	for _, signer := range []string{"unsigned", "other-key"} {
		t.Run(signer, func(t *testing.T) {
			e := newSyncEnv(t, true)
			mod := simpleModule(t, "v1.0.0")
			first := e.push(t, mod, e.key.sv)
			if r := e.sync(t); r.Counts[Recorded] != 1 {
				t.Fatalf("first pass: %+v, want v1.0.0 recorded\n%s", r, e.logs)
			}
			staged := e.retag(t, first)
			if signer == "other-key" {
				moved := first.Tag.Context().Digest(staged.Ref.DigestStr())
				if _, err := Sign(context.Background(), moved, e.other.sv, testRemote); err != nil {
					t.Fatal(err)
				}
			}
			e.logs = new(testlog.Buffer)
			r := e.sync(t)
			e.wantOutcome(t, r, Retagged)
			if r.OK() || len(r.Conflicts) != 1 || !errors.Is(r.Conflicts[0], ErrRetagged) {
				t.Errorf("report %+v, want one conflict wrapping ErrRetagged", r)
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "module=example.com/m version=v1.0.0") {
				t.Errorf("want an ERROR line naming example.com/m v1.0.0:\n%s", logs)
			}
			e.wantRecorded(t, mod) // unchanged
		})
	}
}

// TestSyncRetaggedNoDownload: a recorded version's tag moved to content no
// configured key signed is retagged on every pass, but its layers are
// fetched once, by the first pass that sees it: anyone who may push there
// could otherwise make every pass download a zip of up to 500 MiB. The
// same holds with the sync state lost after the re-tag: the re-tag is
// judged by its layers once, and later passes report it without fetching
// them again.
func TestSyncRetaggedNoDownload(t *testing.T) {
	for _, stateLost := range []bool{false, true} {
		t.Run(fmt.Sprintf("state lost %v", stateLost), func(t *testing.T) {
			e := newSyncEnv(t, true)
			first := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			if r := e.sync(t); r.Counts[Recorded] != 1 {
				t.Fatalf("first pass: %+v, want v1.0.0 recorded\n%s", r, e.logs)
			}
			staged := e.retag(t, first)
			if stateLost {
				e.log.mu.Lock()
				e.log.aux = map[string][]byte{}
				e.log.mu.Unlock()
			}
			fetches := e.countBlobFetches()
			for pass := range 3 {
				e.logs = new(testlog.Buffer)
				r := e.sync(t)
				e.wantOutcome(t, r, Retagged)
				if len(r.Conflicts) != 1 || !errors.Is(r.Conflicts[0], ErrRetagged) {
					t.Errorf("pass %d: report %+v, want one conflict wrapping ErrRetagged", pass, r)
				}
			}
			e.wantLayersFetched(t, staged.Ref, fetches, 1)
		})
	}
}

// TestSyncRepushedSameLayers: a recorded release pushed again (a CI job run
// again) in another manifest, another annotation around the same layers,
// and not signed yet, is the recorded content: present, without fetching
// its layers, not a re-tag to alert on; once signed, it is skipped.
func TestSyncRepushedSameLayers(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	first := e.push(t, mod, e.key.sv)
	if r := e.sync(t); r.Counts[Recorded] != 1 {
		t.Fatalf("first pass: %+v, want v1.0.0 recorded\n%s", r, e.logs)
	}
	again := e.repush(t, first)
	fetches := e.countBlobFetches()
	e.logs = new(testlog.Buffer)
	r := e.sync(t)
	e.wantOutcome(t, r, Present)
	if !r.OK() || strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("report %+v, want ok and no ERROR line:\n%s", r, e.logs)
	}
	e.wantLayersFetched(t, again, fetches, 0)
	if _, err := Sign(context.Background(), again, e.key.sv, testRemote); err != nil {
		t.Fatal(err)
	}
	if r := e.sync(t); r.Skipped != 1 || len(r.Counts) != 0 {
		t.Errorf("pass after signing: %+v, want the version skipped", r)
	}
	e.wantRecorded(t, mod)
}

// TestSyncRetaggedRemembered: the verdict on a re-tag is remembered for
// the manifest judged, not the tag: the tag moved once more, to other
// unsigned content, is fetched and judged afresh, and moved back to the
// recorded manifest is skipped again. A remembered verdict never stands
// for the log: with the version gone from the log, the same manifest is
// an unsigned release, not a re-tag, nor skipped.
func TestSyncRetaggedRemembered(t *testing.T) {
	e := newSyncEnv(t, true)
	first := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	if r := e.sync(t); r.Counts[Recorded] != 1 {
		t.Fatalf("first pass: %+v, want v1.0.0 recorded\n%s", r, e.logs)
	}
	staged := e.retag(t, first)
	fetches := e.countBlobFetches()
	for range 2 {
		e.logs = new(testlog.Buffer)
		e.wantOutcome(t, e.sync(t), Retagged)
	}
	e.wantLayersFetched(t, staged.Ref, fetches, 1)

	again := e.retagTo(t, first, "again")
	fetches = e.countBlobFetches() // the go.mod layer is the same
	for range 2 {
		e.logs = new(testlog.Buffer)
		e.wantOutcome(t, e.sync(t), Retagged)
	}
	e.wantLayersFetched(t, again.Ref, fetches, 1)

	e.moveTag(t, first.Tag, first.Ref)
	if r := e.sync(t); r.Skipped != 1 || len(r.Counts) != 0 {
		t.Errorf("tag moved back: %+v, want the version skipped", r)
	}
	e.moveTag(t, first.Tag, again.Ref)
	e.logs = new(testlog.Buffer)
	e.wantOutcome(t, e.sync(t), Retagged)
	e.wantLayersFetched(t, again.Ref, fetches, 1)

	e.log = e.log.withoutRecords()
	e.logs = new(testlog.Buffer)
	e.wantOutcome(t, e.sync(t), Unsigned)
}

// countBlobFetches counts from now on the GET requests for each blob of
// the synced repositories, by digest (not a push's uploads and checks).
func (e *syncEnv) countBlobFetches() func(v1.Hash) int {
	var mu sync.Mutex
	n := map[string]int{}
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		repo, d, ok := strings.Cut(r.URL.Path, "/blobs/")
		if ok && r.Method == http.MethodGet && strings.HasPrefix(repo, "/v2/gomod/") {
			mu.Lock()
			n[d]++
			mu.Unlock()
		}
		return false
	})
	return func(h v1.Hash) int {
		mu.Lock()
		defer mu.Unlock()
		return n[h.String()]
	}
}

// wantLayersFetched checks that each layer of the manifest at ref was
// requested want times.
func (e *syncEnv) wantLayersFetched(t *testing.T, ref name.Digest, fetches func(v1.Hash) int, want int) {
	t.Helper()
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if n := fetches(l.Digest); n != want {
			t.Errorf("%d requests for layer %s of %s, want %d", n, l.Digest, ref, want)
		}
	}
}

// moveTag points tag at the manifest ref, of the same registry.
func (e *syncEnv) moveTag(t *testing.T, tag name.Tag, ref name.Digest) {
	t.Helper()
	o := remote.WithAuthFromKeychain(testRemote.keychain())
	img, err := remote.Image(ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, o); err != nil {
		t.Fatal(err)
	}
}

// repush writes over first's tag an unsigned manifest naming first's
// layers with one more annotation, as a release pushed again with a
// creation time would be, and returns it.
func (e *syncEnv) repush(t *testing.T, first *Pushed) name.Digest {
	t.Helper()
	o := remote.WithAuthFromKeychain(testRemote.keychain())
	img, err := remote.Image(first.Ref, o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m.Annotations["org.opencontainers.image.created"] = "2026-12-04T00:00:00Z"
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(first.Tag, rawManifest(raw), o); err != nil {
		t.Fatal(err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return first.Tag.Context().Digest(h.String())
}

// retag writes an unsigned artifact of first's version with other content
// over first's tag, pushed elsewhere first (Push itself refuses to move a
// tag), and returns that push.
func (e *syncEnv) retag(t *testing.T, first *Pushed) *Pushed {
	t.Helper()
	return e.retagTo(t, first, "other")
}

// retagTo is retag with a comment in the content, for other content again.
func (e *syncEnv) retagTo(t *testing.T, first *Pushed, comment string) *Pushed {
	t.Helper()
	m := module.Version{Path: "example.com/m", Version: "v1.0.0"}
	other := testModule(t, m, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n// " + comment + "\n"})
	staged, err := Push(context.Background(), e.reg.source(t, "staging-"+comment), other, PushOptions{Remote: testRemote})
	if err != nil {
		t.Fatal(err)
	}
	o := remote.WithAuthFromKeychain(testRemote.keychain())
	img, err := remote.Image(staged.Ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(first.Tag, img, o); err != nil {
		t.Fatal(err)
	}
	return staged
}

// TestSyncRecordedKeyRemoved: a version recorded under a key the operator
// has since removed (rotated to another), examined again because the sync
// state was lost, is the recorded content: its layers hash to what the log
// holds, so it is present, not a re-tag, and the pass is ok; later passes
// skip it. The same version's tag moved to other unsigned content is still
// retagged.
func TestSyncRecordedKeyRemoved(t *testing.T) {
	for _, moved := range []bool{false, true} {
		t.Run(fmt.Sprintf("moved=%v", moved), func(t *testing.T) {
			e := newSyncEnv(t, true)
			mod := simpleModule(t, "v1.0.0")
			first := e.push(t, mod, e.key.sv)
			if r := e.sync(t); r.Counts[Recorded] != 1 {
				t.Fatalf("first pass: %+v, want v1.0.0 recorded\n%s", r, e.logs)
			}
			if moved {
				e.retag(t, first)
			}
			e.log.mu.Lock()
			e.log.aux = map[string][]byte{} // the state is lost
			e.log.mu.Unlock()
			e.logs = new(testlog.Buffer)
			r := e.syncKeys(t, e.other) // the key is rotated: only the new one
			if moved {
				e.wantOutcome(t, r, Retagged)
				if r.OK() || len(r.Conflicts) != 1 || !errors.Is(r.Conflicts[0], ErrRetagged) {
					t.Errorf("report %+v, want one conflict wrapping ErrRetagged", r)
				}
			} else {
				e.wantOutcome(t, r, Present)
				if !r.OK() {
					t.Errorf("report %+v, want ok: the recorded content, only signed by a removed key", r)
				}
				if logs := e.logs.String(); strings.Contains(logs, "level=ERROR") {
					t.Errorf("want no ERROR line:\n%s", logs)
				}
				if r := e.syncKeys(t, e.other); r.Skipped != 1 || len(r.Counts) != 0 {
					t.Errorf("next pass: %+v, want the version skipped", r)
				}
			}
			e.wantRecorded(t, mod)
		})
	}
}

// TestSyncRetaggedTooLargeNotRemembered: a re-tag judged because a layer
// is over the operator's limit (MaxZipSize) is a verdict on the limit, not
// on the manifest: with the limit raised, the same manifest is judged by
// its content, here the recorded release signed by a removed key, present.
func TestSyncRetaggedTooLargeNotRemembered(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	first := e.push(t, mod, e.key.sv)
	if r := e.sync(t); r.Counts[Recorded] != 1 {
		t.Fatalf("first pass: %+v, want v1.0.0 recorded\n%s", r, e.logs)
	}
	e.log.mu.Lock()
	e.log.aux = map[string][]byte{} // the state is lost
	e.log.mu.Unlock()
	e.maxZipSize = 100
	fetches := e.countBlobFetches()
	for range 2 {
		e.logs = new(testlog.Buffer)
		r := e.syncKeys(t, e.other) // the key is rotated: only the new one
		e.wantOutcome(t, r, Retagged)
		if !strings.Contains(e.logs.String(), "larger than the limit of 100 bytes") {
			t.Errorf("want the zip layer refused as too large:\n%s", e.logs)
		}
	}
	// Judged afresh on every pass, but from the manifest alone: not even
	// the go.mod layer is fetched for a zip layer over the limit.
	e.wantLayersFetched(t, first.Ref, fetches, 0)
	e.maxZipSize = 0 // the operator raises the limit
	e.logs = new(testlog.Buffer)
	e.wantOutcome(t, e.syncKeys(t, e.other), Present)
	e.wantRecorded(t, mod)
}

// TestSyncInvalidNoDownload: a signed artifact whose module fails the go
// command's checks is invalid on every pass, but its layers are fetched
// once, by the first pass that judges it: whoever holds a configured key
// could otherwise make every pass download a zip of up to 500 MiB. The
// verdict is re-judged when what it rests on changes: with its key no
// longer configured the artifact is bad_signature, and with the zip layer
// over a lowered limit it is invalid for its size, from the manifest alone.
func TestSyncInvalidNoDownload(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	mod.GoMod = []byte("module example.com/not-m\n") // differs from the zip's go.mod
	p := e.push(t, mod, e.key.sv)
	fetches := e.countBlobFetches()
	for pass := range 3 {
		e.logs = new(testlog.Buffer)
		e.wantOutcome(t, e.sync(t), Invalid)
		if pass > 0 && !strings.Contains(e.logs.String(), "not fetched again") {
			t.Errorf("pass %d: want the remembered verdict said so:\n%s", pass, e.logs)
		}
	}
	e.wantLayersFetched(t, p.Ref, fetches, 1)

	e.logs = new(testlog.Buffer)
	e.wantOutcome(t, e.syncKeys(t, e.other), BadSignature)
	e.maxZipSize = 100
	e.logs = new(testlog.Buffer)
	e.wantOutcome(t, e.sync(t), Invalid)
	if !strings.Contains(e.logs.String(), "larger than the limit of 100 bytes") {
		t.Errorf("want the zip layer refused as too large:\n%s", e.logs)
	}
	e.wantLayersFetched(t, p.Ref, fetches, 1)
}

// TestSyncConflictNoDownload: a signed artifact of a version the log holds
// with other hashes is a conflict on every pass, naming both records, but
// its layers are fetched once: the log never changes a record, nor does a
// digest change its bytes. The verdict never stands for the log: with the
// version gone from the log, the same artifact is fetched and recorded.
func TestSyncConflictNoDownload(t *testing.T) {
	e := newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	old := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: mod.Sums.GoMod}
	if _, err := e.log.Add(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	p := e.push(t, mod, e.key.sv)
	fetches := e.countBlobFetches()
	for pass := range 3 {
		e.logs = new(testlog.Buffer)
		r := e.sync(t)
		e.wantOutcome(t, r, Conflict)
		var conflict *tlog.ConflictError
		if len(r.Conflicts) != 1 || !errors.As(r.Conflicts[0], &conflict) || conflict.Recorded != old || conflict.Proposed.Hash != mod.Sums.Hash {
			t.Errorf("pass %d: report %+v, want the conflict with the recorded version", pass, r)
		}
	}
	e.wantLayersFetched(t, p.Ref, fetches, 1)

	e.log = e.log.withoutRecords()
	e.logs = new(testlog.Buffer)
	e.wantOutcome(t, e.sync(t), Recorded)
	e.wantRecorded(t, mod)
}

// TestSyncLogHints: the log line of an artifact refused as untrustworthy
// or conflicting says what to do about it (hint=), as a registry's refusal
// of sumd's credentials did alone: under sumd serve the status names the
// tag and the log is where the operator reads why.
func TestSyncLogHints(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.other.sv)
	e.wantOutcome(t, e.sync(t), BadSignature)
	if !strings.Contains(e.logs.String(), `hint="sign the artifact with a key of -cosign-key`) {
		t.Errorf("no hint on a bad signature:\n%s", e.logs)
	}

	e = newSyncEnv(t, true)
	mod := simpleModule(t, "v1.0.0")
	old := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: mod.Sums.GoMod}
	if _, err := e.log.Add(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	e.push(t, mod, e.key.sv)
	e.wantOutcome(t, e.sync(t), Conflict)
	if !strings.Contains(e.logs.String(), `hint="a recorded version never changes: move the tag back`) {
		t.Errorf("no hint on a conflict:\n%s", e.logs)
	}
}
