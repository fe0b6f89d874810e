package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testlog"
)

// largeModule is path at version with a file of 8 KiB that does not
// compress, so that its layers outweigh its signature's payload.
func largeModule(t *testing.T, path, version string) *Module {
	t.Helper()
	return largeModuleFrom(t, path, version, path+"@"+version)
}

// largeModuleFrom is largeModule with the file made from seed.
func largeModuleFrom(t *testing.T, path, version, seed string) *Module {
	t.Helper()
	var b strings.Builder
	sum := sha256.Sum256([]byte(seed))
	for b.Len() < 8<<10 {
		b.WriteString(hex.EncodeToString(sum[:]))
		sum = sha256.Sum256(sum[:])
	}
	m := module.Version{Path: path, Version: version}
	return testModule(t, m, map[string]string{"go.mod": "module " + path + "\n", "data.go": "package m\n// " + b.String() + "\n"})
}

// budgetPass runs a pass and checks that it recorded want (a version,
// "path@version", or none) and stopped at resume ("" for a whole round).
func (e *syncEnv) budgetPass(t *testing.T, want, resume string) {
	t.Helper()
	e.logs = new(testlog.Buffer)
	r := e.sync(t)
	var got []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "outcome=recorded") {
			_, m, _ := strings.Cut(line, " module=")
			m, _, _ = strings.Cut(m, " ")
			_, v, _ := strings.Cut(line, " version=")
			v, _, _ = strings.Cut(v, " ")
			got = append(got, m+"@"+v)
		}
	}
	if want == "" && len(got) != 0 || want != "" && !slices.Equal(got, []string{want}) {
		t.Errorf("pass recorded %q, want %q\n%s", got, want, e.logs)
	}
	if !r.OK() || r.Resume != resume {
		t.Errorf("report %+v, want it OK and resuming at %q\n%s", r, resume, e.logs)
	}
	if spent := strings.Contains(e.logs.String(), "level=WARN msg=\"OCI sync: the download budget of the pass is spent"); spent != (resume != "") {
		t.Errorf("warning of the budget spent: %v, want %v\n%s", spent, resume != "", e.logs)
	}
}

// TestSyncPassBudget: a pass downloaded every artifact it found, so a first
// pass over a large registry, or a key holder pushing many versions, had no
// bound on its bytes; a pass now stops examining at the tag whose layers
// its budget (MaxPassBytes) cannot cover, saves the state with that tag,
// and the next pass starts there, wrapping round to it, so that the tags
// before it are examined too (v1.0.1, pushed after the first pass) and
// none is starved. The first artifact of a pass is fetched whatever the
// budget, so that each pass gets on.
func TestSyncPassBudget(t *testing.T) {
	e := newSyncEnv(t, true)
	var layers int64
	for _, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0"} {
		a := manifestOf(t, e.push(t, largeModule(t, "example.com/m", v), e.key.sv))
		layers = max(layers, a.Mod.Size+a.Zip.Size)
	}
	e.maxPassBytes = layers * 3 / 2 // one artifact, not two
	e.metrics = NewMetrics(prometheus.NewRegistry(), time.Minute)
	repo := e.reg.host + "/gomod/example.com/m"

	e.budgetPass(t, "example.com/m@v1.0.0", repo+":v1.1.0")
	e.push(t, largeModule(t, "example.com/m", "v1.0.1"), e.key.sv) // before the resume point
	e.budgetPass(t, "example.com/m@v1.1.0", repo+":v1.2.0")
	e.budgetPass(t, "example.com/m@v1.2.0", repo+":v1.0.1") // wrapped round
	state, err := LoadState(context.Background(), e.log)
	if err != nil || state.data.Resume != repo+":v1.0.1" {
		t.Errorf("state resumes at %q (%v), want the tag the pass stopped at", state.data.Resume, err)
	}
	e.budgetPass(t, "example.com/m@v1.0.1", "")
	e.budgetPass(t, "", "")
	if n := testutil.ToFloat64(e.metrics.budgetSpent); n != 3 {
		t.Errorf("sumd_oci_sync_budget_exhausted_total %v, want 3", n)
	}
	if n := testutil.ToFloat64(e.metrics.passes.WithLabelValues("failed")); n != 0 {
		t.Errorf("%v passes failed, want none: a spent budget is no failure", n)
	}
	if e.log.size() != 4 {
		t.Errorf("log holds %d versions, want 4", e.log.size())
	}
}

// TestSyncPassBudgetRepositories: the same across repositories: the pass
// starts at the repository it stopped at and wraps round to the ones
// before it (example.com/m0a, pushed after the first pass).
func TestSyncPassBudgetRepositories(t *testing.T) {
	e := newSyncEnv(t, true)
	var layers int64
	for _, path := range []string{"example.com/m0", "example.com/m1", "example.com/m2"} {
		a := manifestOf(t, e.push(t, largeModule(t, path, "v1.0.0"), e.key.sv))
		layers = max(layers, a.Mod.Size+a.Zip.Size)
	}
	e.maxPassBytes = layers * 3 / 2
	repo := e.reg.host + "/gomod/example.com/"
	e.budgetPass(t, "example.com/m0@v1.0.0", repo+"m1:v1.0.0")
	e.push(t, largeModule(t, "example.com/m0a", "v1.0.0"), e.key.sv)
	e.budgetPass(t, "example.com/m1@v1.0.0", repo+"m2:v1.0.0")
	e.budgetPass(t, "example.com/m2@v1.0.0", repo+"m0a:v1.0.0")
	e.budgetPass(t, "example.com/m0a@v1.0.0", "")
	e.budgetPass(t, "", "")
}

// TestStateResumeCleanUp: the resume point is kept while its tag is
// listed, and dropped with its tag or its repository, as the entries are.
func TestStateResumeCleanUp(t *testing.T) {
	reg := newTestRegistry(t, true)
	src := reg.source(t, "gomod")
	repo := reg.host + "/gomod/example.com/m"
	s := &State{store: newFakeLog()}
	s.reset()
	s.data.Resume = repo + ":v1.1.0"
	s.retain(repo, []string{"v1.0.0", "v1.1.0"})
	s.prune([]*Source{src}, map[*Source]map[string]bool{src: {repo: true}})
	if s.data.Resume != repo+":v1.1.0" {
		t.Errorf("resume point %q dropped while its tag is listed", s.data.Resume)
	}
	s.retain(repo, []string{"v1.0.0"})
	if s.data.Resume != "" || !s.dirty {
		t.Errorf("resume point %q kept once its tag is gone (changed %v)", s.data.Resume, s.dirty)
	}
	s.data.Resume = repo + ":v1.0.0"
	s.prune([]*Source{src}, map[*Source]map[string]bool{src: {}})
	if s.data.Resume != "" {
		t.Errorf("resume point %q kept once its repository is no longer listed", s.data.Resume)
	}
}

// TestSyncPassBudgetRetagged: the budget stops a pass at an artifact no
// configured key signed, of a version the log holds, whose layers must be
// fetched to tell the recorded release from a re-tag (matchRecorded, which
// wraps hash's errBudgetSpent in a failure to read its content): the pass
// stops there as at a signed one, not a failure, keeping what the state
// remembered of the tag, and the next pass starts there.
func TestSyncPassBudgetRetagged(t *testing.T) {
	e := newSyncEnv(t, true)
	var first []*Pushed
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		first = append(first, e.push(t, largeModule(t, "example.com/m", v), e.key.sv))
	}
	if r := e.sync(t); r.Counts[Recorded] != 2 {
		t.Fatalf("first pass: %+v, want both recorded\n%s", r, e.logs)
	}
	repo := e.reg.host + "/gomod/example.com/m"
	before, err := LoadState(context.Background(), e.log)
	if err != nil {
		t.Fatal(err)
	}
	// Each tag moved to other content, unsigned.
	var layers int64
	o := remote.WithAuthFromKeychain(testRemote.keychain())
	for _, p := range first {
		m := largeModuleFrom(t, "example.com/m", p.Tag.TagStr(), "other")
		staged, err := Push(context.Background(), e.reg.source(t, "staging-"+p.Tag.TagStr()), m, PushOptions{Remote: testRemote})
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(staged.Ref, o)
		if err == nil {
			err = remote.Write(p.Tag, img, o)
		}
		if err != nil {
			t.Fatal(err)
		}
		a := manifestOf(t, staged)
		layers = max(layers, a.Mod.Size+a.Zip.Size)
	}
	e.maxPassBytes = layers * 3 / 2 // one artifact's layers, not two

	e.logs = new(testlog.Buffer)
	r := e.sync(t)
	if len(r.Failures) != 0 || r.Resume != repo+":v1.1.0" || r.Counts[Retagged] != 1 || len(r.Counts) != 1 {
		t.Errorf("report %+v, want one re-tag, no failure, resuming at v1.1.0\n%s", r, e.logs)
	}
	after, err := LoadState(context.Background(), e.log)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.entry(repo, "v1.1.0"), before.entry(repo, "v1.1.0"); got != want || got.Digest == "" {
		t.Errorf("state of the tag the pass stopped at %+v, want it kept: %+v", got, want)
	}
	e.logs = new(testlog.Buffer)
	r = e.sync(t)
	if r.Resume != "" || r.Counts[Retagged] != 2 || len(r.Failures) != 0 {
		t.Errorf("next pass: report %+v, want both re-tags reported in a whole round\n%s", r, e.logs)
	}
}

// TestSyncPassBudgetHidesNoFailure: a pass that spends its budget leaves
// the rest of the round to the next passes, so a tag that fails every
// time it is read (here its zip layer answers 500) failed one pass of
// each round, and the passes in between, which did not reach it, were
// counted ok: sumd_oci_sync_last_success_timestamp_seconds went on
// advancing, SumdOCISyncStale never fired and the health problem showed
// only after the one pass. A failure is now remembered (State.Problems)
// until a pass reads its tag again, and a pass that does not reach it
// fails, naming it.
func TestSyncPassBudgetHidesNoFailure(t *testing.T) {
	e := newSyncEnv(t, true)
	var layers int64
	var broken *Artifact
	for _, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"} {
		a := manifestOf(t, e.push(t, largeModule(t, "example.com/m", v), e.key.sv))
		layers = max(layers, a.Mod.Size+a.Zip.Size)
		if v == "v1.1.0" {
			broken = a
		}
	}
	zip := "/blobs/" + broken.Zip.Digest.String()
	fail := func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, zip) {
			http.Error(w, "broken", http.StatusInternalServerError)
			return true
		}
		return false
	}
	e.reg.turnHostile(fail)
	e.maxPassBytes = layers * 3 / 2 // one artifact, not two
	e.metrics = NewMetrics(prometheus.NewRegistry(), time.Minute)
	repo := e.reg.host + "/gomod/example.com/m"
	pass := func(wantFailed bool, resume string) *Report {
		t.Helper()
		e.logs = new(testlog.Buffer)
		r := e.sync(t)
		if r.OK() == wantFailed || r.Resume != resume {
			t.Errorf("report %+v, want failed %v, resuming at %q\n%s", r, wantFailed, resume, e.logs)
		}
		return r
	}
	pass(false, repo+":v1.1.0")     // v1.0.0
	pass(true, repo+":v1.3.0")      // v1.1.0 fails (fetching nothing), v1.2.0
	r := pass(true, repo+":v1.1.0") // v1.3.0: v1.1.0 not read again
	if len(r.Failures) != 1 || !strings.Contains(r.Failures[0].Error(), repo+":v1.1.0") {
		t.Errorf("failures %q, want one naming the tag an earlier pass failed at", r.Failures)
	}
	if want := (Place{Outcome: Failed, Registry: e.reg.host, Repository: "gomod/example.com/m", Tag: "v1.1.0", Unread: true}); len(r.Places) != 1 || r.Places[0] != want {
		t.Errorf("places %+v, want %+v", r.Places, want)
	}
	if !slices.ContainsFunc(strings.Split(e.logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, "level=ERROR") && strings.Contains(l, repo+":v1.1.0")
	}) {
		t.Errorf("the server log has no error naming the tag still failing:\n%s", e.logs)
	}
	pass(true, "") // v1.1.0, failing again, and the round's end
	if n := testutil.ToFloat64(e.metrics.passes.WithLabelValues("ok")); n != 1 {
		t.Errorf("%v passes ok, want only the first", n)
	}
	e.reg.hostile.Store(nil) // the registry mended
	pass(false, "")          // v1.1.0 recorded
	pass(false, "")
	if e.log.size() != 4 {
		t.Errorf("log holds %d versions, want 4", e.log.size())
	}
}

// TestStateProblemsCleanUp: a problem is kept while its tag or repository
// is listed and dropped with it, as the entries are, and a pass reading
// its place again settles it.
func TestStateProblemsCleanUp(t *testing.T) {
	reg := newTestRegistry(t, true)
	src := reg.source(t, "gomod")
	repo := reg.host + "/gomod/example.com/m"
	s := &State{store: newFakeLog()}
	s.reset()
	s.read(repo, "v1.0.0", Failed)
	s.read(repo, "v1.1.0", Conflict)
	s.read(repo, "", Failed)
	s.seen = nil // a new pass
	s.retain(repo, []string{"v1.0.0"})
	s.prune([]*Source{src}, map[*Source]map[string]bool{src: {repo: true}})
	if got := s.unread(); !slices.Equal(got[Failed], []string{repo, repo + ":v1.0.0"}) || len(got) != 1 {
		t.Errorf("problems unread %q, want the repository's and v1.0.0's, v1.1.0's dropped with its tag", got)
	}
	s.read(repo, "", Unsigned)
	if got := s.unread(); !slices.Equal(got[Failed], []string{repo + ":v1.0.0"}) || len(got) != 1 {
		t.Errorf("problems unread %q once the repository was read again, want v1.0.0's", got)
	}
	s.prune([]*Source{src}, map[*Source]map[string]bool{src: {}})
	if len(s.data.Problems) != 0 {
		t.Errorf("problems %q kept once their repository is no longer listed", s.data.Problems)
	}
}

// TestSyncPassBudgetArtifactLargerThanBudget: an artifact whose layers
// alone exceed the whole budget is read by the pass that starts at it (the
// first artifact whose layers a pass fetches is granted them whatever
// their size), which then stops at the next one: no pass resumes at the
// tag the last one stopped at, each records something, and none is a
// failure, so sumd_oci_sync_last_success_timestamp_seconds advances.
func TestSyncPassBudgetArtifactLargerThanBudget(t *testing.T) {
	e := newSyncEnv(t, true)
	small := func(v string) *Module {
		return testModule(t, module.Version{Path: "example.com/m", Version: v}, map[string]string{"go.mod": "module example.com/m\n"})
	}
	a := manifestOf(t, e.push(t, small("v1.0.0"), e.key.sv))
	large := manifestOf(t, e.push(t, largeModule(t, "example.com/m", "v1.1.0"), e.key.sv))
	e.push(t, small("v1.2.0"), e.key.sv)
	e.maxPassBytes = a.Mod.Size + a.Zip.Size + 1024 // a small artifact and its signature
	if layers := large.Mod.Size + large.Zip.Size; layers <= e.maxPassBytes {
		t.Fatalf("v1.1.0's layers are %d bytes, not more than the budget of %d", layers, e.maxPassBytes)
	}
	e.metrics = NewMetrics(prometheus.NewRegistry(), time.Minute)
	repo := e.reg.host + "/gomod/example.com/m"
	e.budgetPass(t, "example.com/m@v1.0.0", repo+":v1.1.0")
	e.budgetPass(t, "example.com/m@v1.1.0", repo+":v1.2.0") // larger than the whole budget
	e.budgetPass(t, "example.com/m@v1.2.0", "")
	e.budgetPass(t, "", "")
	if ok, failed := testutil.ToFloat64(e.metrics.passes.WithLabelValues("ok")), testutil.ToFloat64(e.metrics.passes.WithLabelValues("failed")); ok != 4 || failed != 0 {
		t.Errorf("%v passes ok and %v failed, want 4 and none", ok, failed)
	}
	if testutil.ToFloat64(e.metrics.lastOK) == 0 {
		t.Error("sumd_oci_sync_last_success_timestamp_seconds never set")
	}
}

// TestSyncProblemsOfDeletedRepository: a repository named with
// -repository, where a pass failed to read a tag, then deleted from the
// registry (NAME_UNKNOWN: a repository not there) keeps no tag a pass could
// read again; its problems were kept all the same, and every pass after
// failed with "not read again by this pass" naming the tag, for as long as
// the repository stayed configured. A repository the registry says it
// does not have settles the problems of its tags, as a listing without
// them does.
func TestSyncProblemsOfDeletedRepository(t *testing.T) {
	e := newSyncEnv(t, true)
	a := manifestOf(t, e.push(t, simpleModule(t, "v1.0.0"), e.key.sv))
	repo := e.reg.host + "/gomod/example.com/m"
	sources, err := ParseSources([]string{e.reg.host + "/gomod"}, []string{repo})
	if err != nil {
		t.Fatal(err)
	}
	e.src = sources[0]
	zip := "/blobs/" + a.Zip.Digest.String()
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, zip) {
			http.Error(w, "broken", http.StatusInternalServerError)
			return true
		}
		return false
	})
	if r := e.sync(t); r.OK() {
		t.Fatalf("report %+v, want the zip's failure", r)
	}
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`)
			return true
		}
		return false
	})
	e.logs = new(testlog.Buffer)
	if r := e.sync(t); !r.OK() {
		t.Errorf("report of a pass over the deleted repository: failures %q, want none\n%s", r.Failures, e.logs)
	}
}
