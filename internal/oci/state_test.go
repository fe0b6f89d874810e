package oci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

func TestStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	log := newFakeLog()
	s, err := LoadState(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := log.aux[stateKey]; ok {
		t.Errorf("Save of an unchanged state wrote it")
	}
	s.remember("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa", "example.com/m@v1.0.0")
	if err := s.Save(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = LoadState(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if mv, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa"); !ok || mv != "example.com/m@v1.0.0" {
		t.Errorf("recorded = %q, %v after reload", mv, ok)
	}
	if _, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:bb"); ok {
		t.Error("a tag moved to another digest counts as recorded")
	}
	s.forget("r.example/gomod/example.com/m", "v1.0.0")
	if _, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa"); ok || !s.dirty {
		t.Error("forget kept the entry")
	}
}

// TestStateEntryCompat: the fields added to an entry since version 1 are
// optional both ways: an entry written without them (by an older sumd)
// reads as before, one that has none is written as before, and an entry
// holding only a re-tag verdict, with no digest recorded from the tag,
// never counts as recorded.
func TestStateEntryCompat(t *testing.T) {
	ctx := context.Background()
	const repo = "r.example/gomod/example.com/m"
	log := newFakeLog()
	log.aux[stateKey] = []byte(`{"version":1,"repositories":{"` + repo + `":{"v1.0.0":{"digest":"sha256:aa","module":"example.com/m@v1.0.0"}}}}`)
	s, err := LoadState(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if mv, ok := s.recorded(repo, "v1.0.0", "sha256:aa"); !ok || mv != "example.com/m@v1.0.0" {
		t.Errorf("older entry: recorded = %q, %v", mv, ok)
	}
	s.put(repo, "v1.0.1", stateEntry{Module: "example.com/m@v1.0.1", Retagged: "sha256:bb"})
	if _, ok := s.recorded(repo, "v1.0.1", ""); ok {
		t.Error("an entry holding only a re-tag verdict counts as recorded")
	}
	s.forget(repo, "v1.0.0")
	s.remember(repo, "v1.0.0", "sha256:aa", "example.com/m@v1.0.0")
	if err := s.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if data := string(log.aux[stateKey]); strings.Count(data, `"mod"`)+strings.Count(data, `"zip"`) != 0 || strings.Count(data, `"retagged"`) != 1 {
		t.Errorf("saved state writes fields an entry does not have:\n%s", data)
	}
}

// TestStateDamaged: a damaged state is only a lost cache: LoadState says so
// and hands back an empty state, which the next Save writes over it.
func TestStateDamaged(t *testing.T) {
	ctx := context.Background()
	for _, data := range []string{"{", `{"version":2,"repositories":{}}`} {
		log := newFakeLog()
		log.aux[stateKey] = []byte(data)
		s, err := LoadState(ctx, log)
		if !errors.Is(err, ErrStateDamaged) || s == nil || len(s.data.Repositories) != 0 {
			t.Fatalf("LoadState(%q) = %v, %v; want an empty state and ErrStateDamaged", data, s, err)
		}
		if err := s.Save(ctx); err != nil || string(log.aux[stateKey]) == data {
			t.Errorf("Save after a damaged state: %v, state still %q", err, log.aux[stateKey])
		}
	}
}

// savesLog counts the writes of the sync state, and refuses them, as
// tlog.Log may, once their context has ended.
type savesLog struct {
	*fakeLog
	saves int
}

func (l *savesLog) SetAux(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.saves++
	return l.fakeLog.SetAux(ctx, key, value)
}

// pushRepos pushes n signed modules, each to a repository of its own.
func pushRepos(t *testing.T, e *syncEnv, n int) {
	t.Helper()
	for i := range n {
		m := module.Version{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0"}
		e.push(t, testModule(t, m, map[string]string{"go.mod": "module " + m.Path + "\n"}), e.key.sv)
	}
}

func (e *syncEnv) syncer(t *testing.T, log Recorder) *Syncer {
	t.Helper()
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: log,
		Remote: testRemote, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSyncStateSavedOncePerPass: the whole state was written after every
// repository that changed it, O(R²) bytes over a first pass of R
// repositories; a pass shorter than the save interval now writes it once,
// and an unchanged pass not at all. A longer one saves as it goes: with an
// interval of 0, after each artifact that changed it.
func TestSyncStateSavedOncePerPass(t *testing.T) {
	for _, c := range []struct {
		every time.Duration
		saves []int // per pass
	}{
		{stateSaveInterval, []int{1, 0}},
		{0, []int{3, 0}},
	} {
		t.Run(fmt.Sprint(c.every), func(t *testing.T) {
			e := newSyncEnv(t, true)
			pushRepos(t, e, 3)
			log := &savesLog{fakeLog: e.log}
			s := e.syncer(t, log)
			s.saveEvery = c.every
			for pass, want := range c.saves {
				log.saves = 0
				r, err := s.Sync(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if r.Counts[Recorded]+r.Skipped != 3 || log.saves != want {
					t.Errorf("pass %d: report %+v, %d saves of the state, want %d", pass, r, log.saves, want)
				}
			}
		})
	}
}

// TestSyncStateSavedOnStop: a pass stopped (ctx ended) saves what it
// recorded, so that the next one does not examine it again.
func TestSyncStateSavedOnStop(t *testing.T) {
	e := newSyncEnv(t, true)
	pushRepos(t, e, 2)
	log := &savesLog{fakeLog: e.log}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.log.afterAdd = cancel // stop once the first version is recorded
	if _, err := e.syncer(t, log).Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync: %v, want it stopped", err)
	}
	e.log.afterAdd = nil
	r, err := e.syncer(t, log).Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Skipped != 1 || r.Counts[Recorded] != 1 || len(r.Counts) != 1 {
		t.Errorf("report %+v after a stopped pass, want the version it recorded unchanged and the other recorded\n%s", r, e.logs)
	}
}

// TestSyncStateDropsDeletedTags: the entry of a tag no longer listed is
// dropped, but only after a complete listing of its repository.
func TestSyncStateDropsDeletedTags(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	gone := e.push(t, simpleModule(t, "v1.1.0"), e.key.sv)
	e.sync(t)
	if err := remote.Delete(gone.Tag, remote.WithAuthFromKeychain(testRemote.keychain())); err != nil {
		t.Fatal(err)
	}
	tags := func() []string {
		s, err := LoadState(context.Background(), e.log)
		if err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, repo := range s.data.Repositories {
			for tag := range repo {
				tags = append(tags, tag)
			}
		}
		slices.Sort(tags)
		return tags
	}
	// A listing that fails drops nothing.
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			return false
		}
		w.WriteHeader(http.StatusBadRequest)
		return true
	})
	if r := e.hostileSync(t); len(r.Failures) != 1 {
		t.Fatalf("failures %v, want the listing failed", r.Failures)
	}
	if got := tags(); !slices.Equal(got, []string{"v1.0.0", "v1.1.0"}) {
		t.Errorf("state holds tags %q after a failed listing, want both", got)
	}
	e.reg.hostile.Store(nil)
	e.sync(t)
	if got := tags(); !slices.Equal(got, []string{"v1.0.0"}) {
		t.Errorf("state holds tags %q, want only the one still listed", got)
	}
}

// TestSyncStateDropsUnlistedRepositories: the entries of a repository no
// longer listed (deleted from the catalog, dropped from -repository, its
// source removed from the configuration) stayed for ever; they are dropped
// once a pass has listed its source completely, and not when the listing
// fails.
func TestSyncStateDropsUnlistedRepositories(t *testing.T) {
	e := newSyncEnv(t, true)
	pushRepos(t, e, 2)
	e.sync(t)
	repos := func() []string {
		s, err := LoadState(context.Background(), e.log)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(s.data.Repositories))
	}
	m0, m1 := e.reg.host+"/gomod/example.com/m0", e.reg.host+"/gomod/example.com/m1"
	if got := repos(); !slices.Equal(got, []string{m0, m1}) {
		t.Fatalf("state holds %q after the first pass, want %q", got, []string{m0, m1})
	}

	// A catalog that cannot be listed drops nothing.
	sources, err := ParseSources([]string{e.reg.host + "/gomod"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.src = sources[0]
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/_catalog") {
			return false
		}
		w.WriteHeader(http.StatusInternalServerError)
		return true
	})
	if r := e.hostileSync(t); len(r.Failures) != 1 {
		t.Fatalf("failures %v, want the catalog failed", r.Failures)
	}
	if got := repos(); !slices.Equal(got, []string{m0, m1}) {
		t.Errorf("state holds %q after a failed catalog listing, want %q", got, []string{m0, m1})
	}
	e.reg.hostile.Store(nil)

	// -repository names only m0 now.
	if sources, err = ParseSources([]string{e.reg.host + "/gomod"}, []string{m0}); err != nil {
		t.Fatal(err)
	}
	e.src = sources[0]
	e.sync(t)
	if got := repos(); !slices.Equal(got, []string{m0}) {
		t.Errorf("state holds %q once only m0 is configured, want %q", got, []string{m0})
	}

	// The source is replaced by another.
	e.src = e.reg.source(t, "other")
	e.sync(t)
	if got := repos(); len(got) != 0 {
		t.Errorf("state holds %q once its source is no longer configured, want none", got)
	}
}

// TestSyncStateNamesAnotherVersion: a state entry naming a module version
// its repository and tag cannot hold (a damaged or altered entry, for a
// version the log holds) does not make the pass skip the tag: the artifact
// there is examined and recorded.
func TestSyncStateNamesAnotherVersion(t *testing.T) {
	e := newSyncEnv(t, true)
	first, second := simpleModule(t, "v1.0.0"), simpleModule(t, "v1.0.1")
	e.push(t, first, e.key.sv)
	e.push(t, second, e.key.sv)
	e.sync(t)
	state, err := LoadState(context.Background(), e.log)
	if err != nil {
		t.Fatal(err)
	}
	repo := e.reg.host + "/gomod/example.com/m"
	entry := state.data.Repositories[repo]["v1.0.1"]
	state.remember(repo, "v1.0.1", entry.Digest, "example.com/m@v1.0.0")
	if err := state.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A log holding v1.0.0 only, with the altered state.
	e.log = e.log.withoutRecords()
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: first.Sums.Hash, GoMod: first.Sums.GoMod}
	if _, err := e.log.Add(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	e.sync(t)
	e.wantRecorded(t, second)
}

// TestSettleRepoDropsRefused: a repository the registry says it no longer
// has takes its refused artifacts with it, as it takes its problems:
// sumd_oci_refused_artifacts (the alert SumdOCISignatureRefused) must not
// stay up for artifacts no pass can read again.
func TestSettleRepoDropsRefused(t *testing.T) {
	var s State
	s.reset()
	s.read("r.example/gomod/a", "v1.0.0", BadSignature)
	s.read("r.example/gomod/a", "v1.1.0", Conflict)
	s.read("r.example/gomod/b", "v1.0.0", Tampered)
	s.settleRepo("r.example/gomod/a")
	if got := s.refusedCounts(); got[BadSignature] != 0 || got[Conflict] != 0 || got[Tampered] != 1 {
		t.Errorf("refused artifacts after the repository went = %v, want only b's tampered one", got)
	}
	if _, ok := s.data.Problems["r.example/gomod/a"]; ok {
		t.Errorf("problems of the repository that went are kept: %v", s.data.Problems)
	}
}
