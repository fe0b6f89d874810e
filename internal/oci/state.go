package oci

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sumd-project/sumd/internal/tlog"
)

// stateVersion is the format of the state; another is treated as damaged.
const stateVersion = 1

// State is what sync remembers between passes: per repository and version
// tag, the manifest digest that was recorded from it and its module
// version, so that the next pass neither fetches nor verifies it again. A
// tag moved to another digest is examined again, and so is a digest under
// a tag it was not recorded from (its placement must be checked there).
// With that digest it keeps the manifest's layers, and the digest of a
// manifest the tag moved to that was judged a re-tag, or, signed, judged
// invalid or a conflict, so that neither a release pushed again around the
// same layers nor such a manifest makes every pass download the layers
// (see examine); none makes a pass skip a tag. It also keeps the tag
// where the last pass ran out of its download budget, where the next pass
// starts (Options.MaxPassBytes), and the repositories and tags whose last
// read failed a pass (Problems), until a pass reads them again, and the
// tags where it found refused artifacts (RefusedArtifacts), the gauge a
// restart restores (NewSyncer). It lives in the database itself, as JSON
// under the auxiliary key stateKey (Recorder.SetAux), so one file is the
// whole of a sumd instance.
//
// The state is only a cache. Sync re-checks that a remembered version is
// one the repository and tag can hold, and that the log holds it, before
// it skips the tag, and recording is idempotent (the same hashes again are
// a no-op), so a lost, stale or altered state costs a pass that re-reads
// artifacts, never a wrong record nor a skipped one; a damaged one is
// dropped with a warning (ErrStateDamaged) for the same reason.
//
// A State is used by one sync pass at a time: sync runs under the lock of
// the database file (sumd sync opens it; sumd serve holds it).
type State struct {
	store Recorder
	data  stateFile
	// dirty means data has changes Save has not written yet, the oldest
	// made at dirtySince.
	dirty      bool
	dirtySince time.Time
	// seen is what this pass read of the problems' places,
	// "host/repository:tag" (State.read).
	seen map[string]bool
}

type stateFile struct {
	Version int `json:"version"`
	// Repositories maps "host/repository" to tag to what was recorded.
	Repositories map[string]map[string]stateEntry `json:"repositories"`
	// Resume is the tag the next pass starts at, "host/repository:tag":
	// the last pass ran out of its download budget there (Options.
	// MaxPassBytes). Optional, as the stateEntry fields added since
	// version 1.
	Resume string `json:"resume,omitempty"`
	// Problems maps "host/repository" to tag ("" for the repository
	// itself) to what the last pass that read it found there that fails a
	// pass (Failed, Conflict, Retagged or Refused), until a pass reads it
	// again: a pass that spent its budget before them fails with them
	// (Syncer.unsettled), so that a round spread over several passes does
	// not hide them in the passes that do not reach them. Optional, as
	// Resume.
	Problems places `json:"problems,omitempty"`
	// RefusedArtifacts maps "host/repository" to tag to the refused
	// outcome (refusedOutcomes: bad_signature, tampered, conflict,
	// retagged) the last pass that read the tag found there, until a pass
	// reads it otherwise (a failed read keeps it) or a complete listing
	// no longer holds it: sumd_oci_refused_artifacts, which a restart must
	// not reset while the artifacts stay in the registry (passes spending
	// their budget may take a round to read them again). Optional, as
	// Resume.
	RefusedArtifacts places `json:"refused_artifacts,omitempty"`
}

// A stateEntry is the artifact recorded from one tag, and what was judged
// of a manifest no configured key signed that the tag was moved to.
//
// Fields added since version 1 are optional, so that the state stays
// version 1: an older sumd reads it (encoding/json ignores what it does
// not know) and, rewriting an entry, drops them, which costs the next pass
// here one download of the layers the field spared, nothing else.
type stateEntry struct {
	Digest string `json:"digest"` // manifest digest; "" if not known (Retagged alone)
	Module string `json:"module"` // "path@version"
	// Mod and Zip are the go.mod and zip layers of that manifest: the
	// same layers in another manifest no configured key signed (a release
	// pushed again, with another annotation) are the recorded bytes.
	Mod stateLayer `json:"mod,omitzero"`
	Zip stateLayer `json:"zip,omitzero"`
	// Retagged is a manifest at the tag that no configured key signed and
	// whose layers were fetched and found not to be Module's recorded
	// content, so that later passes report it again without fetching them.
	Retagged string `json:"retagged,omitempty"`
	// Invalid is a manifest at the tag, signed by a configured key, whose
	// layers were fetched and found to fail the go command's checks (not
	// the size limits, which the operator may change), so that later
	// passes report it again without fetching them once its signature
	// verifies with the keys then configured and its layers are within
	// the limits then configured.
	Invalid string `json:"invalid,omitempty"`
	// Conflict is a manifest at the tag, signed by a configured key,
	// whose layers hash to other hashes than the log's record of their
	// version, and those hashes: later passes compare them with the log
	// again (Recorder.Check), without fetching the layers, once its
	// signature verifies with the keys then configured.
	Conflict stateConflict `json:"conflict,omitzero"`
}

// A stateConflict is a manifest digest and the go.sum hashes of its layers.
type stateConflict struct {
	Digest string `json:"digest"`
	Hash   string `json:"hash"`
	GoMod  string `json:"gomod"`
}

// A stateLayer is a layer descriptor's digest and size.
type stateLayer struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

func layerOf(d v1.Descriptor) stateLayer {
	return stateLayer{Digest: d.Digest.String(), Size: d.Size}
}

// sameLayers reports whether a names the layers e was recorded from.
func (e stateEntry) sameLayers(a *Artifact) bool {
	return e.Digest != "" && e.Mod.Digest != "" && e.Zip.Digest != "" &&
		e.Mod == layerOf(a.Mod) && e.Zip == layerOf(a.Zip)
}

// stateKey is the auxiliary key of the sync state in the database.
const stateKey = "oci-sync"

// ErrStateDamaged marks a sync state that could not be read; LoadState then
// returns an empty state along with it.
var ErrStateDamaged = errors.New("OCI sync state is damaged; starting from an empty one (the next pass re-reads every artifact)")

// LoadState reads the sync state kept in store; none is an empty state. A
// damaged state yields an empty State and an error wrapping ErrStateDamaged.
func LoadState(ctx context.Context, store Recorder) (*State, error) {
	s := &State{store: store}
	s.reset()
	data, err := store.Aux(ctx, stateKey)
	if err != nil {
		return nil, fmt.Errorf("failed to read sync state: %w", err)
	}
	if data == nil {
		return s, nil
	}
	if len(data) > maxStateSize {
		s.changed() // overwrite the damaged state at the next Save
		return s, fmt.Errorf("%w (%d bytes, more than the limit of %d)", ErrStateDamaged, len(data), maxStateSize)
	}
	if err := json.Unmarshal(data, &s.data); err != nil || s.data.Version != stateVersion {
		v := s.data.Version
		s.reset()
		s.changed()
		return s, fmt.Errorf("%w (format version %d, want %d; %v)", ErrStateDamaged, v, stateVersion, err)
	}
	if err := s.data.check(); err != nil {
		s.reset()
		s.changed()
		return s, fmt.Errorf("%w (%v)", ErrStateDamaged, err)
	}
	if s.data.Repositories == nil {
		s.data.Repositories = map[string]map[string]stateEntry{}
	}
	for repo, tags := range s.data.Problems {
		if len(tags) == 0 {
			delete(s.data.Problems, repo) // as settle leaves it
		}
	}
	if len(s.data.Problems) == 0 {
		s.data.Problems = nil
	}
	for repo, tags := range s.data.RefusedArtifacts {
		if len(tags) == 0 {
			delete(s.data.RefusedArtifacts, repo) // as unrefuse leaves it
		}
	}
	if len(s.data.RefusedArtifacts) == 0 {
		s.data.RefusedArtifacts = nil
	}
	return s, nil
}

// maxStateSize caps the state LoadState reads: the database stores no
// larger auxiliary value, so a larger one is damage.
const maxStateSize = tlog.MaxAuxSize

// check reports a field of the state that sync cannot have written: JSON
// that parses but was damaged or hand-edited (a conflict's hashes, a
// resume point naming no tag).
func (f *stateFile) check() error {
	for repo, tags := range f.Repositories {
		for tag, e := range tags {
			if err := e.check(); err != nil {
				return fmt.Errorf("%s:%s: %w", repo, tag, err)
			}
		}
	}
	if f.Resume != "" {
		i := strings.LastIndex(f.Resume, ":")
		if i <= 0 || i == len(f.Resume)-1 || strings.Contains(f.Resume[i+1:], "/") {
			return fmt.Errorf("the resume point %.200q is not host/repository:tag", f.Resume)
		}
	}
	for repo, tags := range f.Problems {
		for tag, o := range tags {
			if repo == "" || !failsPass(o) {
				return fmt.Errorf("the problem %.100q at %.200q:%.100q is not one that fails a pass", o, repo, tag)
			}
		}
	}
	for repo, tags := range f.RefusedArtifacts {
		for tag, o := range tags {
			if repo == "" || tag == "" || !slices.Contains(refusedOutcomes, o) {
				return fmt.Errorf("the refused artifact %.100q at %.200q:%.100q is not one of %v", o, repo, tag, refusedOutcomes)
			}
		}
	}
	return nil
}

// failsPass reports whether an artifact of outcome o fails its pass.
func failsPass(o Outcome) bool {
	return o == Failed || o == Conflict || o == Retagged || o == Refused
}

// check reports a malformed conflict in e. Its other fields sync only
// compares with what a registry serves, where a damaged one matches
// nothing and costs a download, but a conflict's hashes are compared with
// the log without fetching the layers.
func (e stateEntry) check() error {
	if e.Conflict == (stateConflict{}) {
		return nil
	}
	if e.Conflict.Digest == "" {
		return errors.New("a conflict names no manifest digest")
	}
	for _, h := range []string{e.Conflict.Hash, e.Conflict.GoMod} {
		if !isH1(h) {
			return fmt.Errorf("conflict hash %.100q is not a go.sum hash (h1:)", h)
		}
	}
	return nil
}

// isH1 reports whether h is an h1: hash as the go command writes one.
func isH1(h string) bool {
	b64, ok := strings.CutPrefix(h, "h1:")
	sum, err := base64.StdEncoding.Strict().DecodeString(b64)
	return ok && err == nil && len(sum) == sha256.Size && base64.StdEncoding.EncodeToString(sum) == b64
}

func (s *State) reset() {
	s.data = stateFile{Version: stateVersion, Repositories: map[string]map[string]stateEntry{}}
}

// read notes what a pass found at repo:tag (tag "" for the repository
// itself): a problem if o fails a pass, kept until a pass reads it again,
// else nothing to keep.
func (s *State) read(repo, tag string, o Outcome) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[repo+":"+tag] = true
	s.readRefused(repo, tag, o)
	if failsPass(o) {
		if s.data.Problems.set(repo, tag, o) {
			s.changed()
		}
		return
	}
	s.settle(repo, tag)
}

// settle drops the problem kept for repo:tag, if any.
func (s *State) settle(repo, tag string) {
	if s.data.Problems.drop(repo, tag) {
		s.changed()
	}
}

// settleRepo drops the problems and refused artifacts kept for repo and
// its tags: the registry says it has no such repository, so no pass can
// read them again.
func (s *State) settleRepo(repo string) {
	if _, ok := s.data.Problems[repo]; ok {
		delete(s.data.Problems, repo)
		s.changed()
	}
	if _, ok := s.data.RefusedArtifacts[repo]; ok {
		delete(s.data.RefusedArtifacts, repo)
		s.changed()
	}
}

// readRefused keeps what a pass read at repo:tag for
// sumd_oci_refused_artifacts: a refused outcome until a pass reads
// another there. A failed read tells nothing of the artifact, so it keeps
// what an earlier read found, as a registry down for a pass does.
func (s *State) readRefused(repo, tag string, o Outcome) {
	if tag == "" || o == Failed {
		return
	}
	if !slices.Contains(refusedOutcomes, o) {
		s.unrefuse(repo, tag)
		return
	}
	if s.data.RefusedArtifacts.set(repo, tag, o) {
		s.changed()
	}
}

// unrefuse drops the refused artifact kept for repo:tag, if any.
func (s *State) unrefuse(repo, tag string) {
	if s.data.RefusedArtifacts.drop(repo, tag) {
		s.changed()
	}
}

// places keeps an outcome per "host/repository" and tag: the state's
// Problems and RefusedArtifacts.
type places map[string]map[string]Outcome

// set sets p[repo][tag] to o, making the maps it needs, and reports
// whether that changed p.
func (p *places) set(repo, tag string, o Outcome) bool {
	tags := (*p)[repo]
	if was, ok := tags[tag]; ok && was == o {
		return false
	}
	if tags == nil {
		if *p == nil {
			*p = places{}
		}
		tags = map[string]Outcome{}
		(*p)[repo] = tags
	}
	tags[tag] = o
	return true
}

// drop deletes p[repo][tag], and repo once it holds no tag, and reports
// whether that changed p.
func (p places) drop(repo, tag string) bool {
	tags, ok := p[repo]
	if _, there := tags[tag]; !ok || !there {
		return false
	}
	delete(tags, tag)
	if len(tags) == 0 {
		delete(p, repo)
	}
	return true
}

// refusedCounts returns the refused artifacts kept, by outcome
// (sumd_oci_refused_artifacts).
func (s *State) refusedCounts() map[Outcome]int {
	n := map[Outcome]int{}
	for _, tags := range s.data.RefusedArtifacts {
		for _, o := range tags {
			n[o]++
		}
	}
	return n
}

// unread returns the problems kept that this pass did not read again
// (State.read), by outcome, each "host/repository:tag" or, for a
// repository, "host/repository", sorted.
func (s *State) unread() map[Outcome][]string {
	var u map[Outcome][]string
	for repo, tags := range s.data.Problems {
		for tag, o := range tags {
			if s.seen[repo+":"+tag] {
				continue
			}
			if u == nil {
				u = map[Outcome][]string{}
			}
			at := repo
			if tag != "" {
				at += ":" + tag
			}
			u[o] = append(u[o], at)
		}
	}
	for _, ats := range u {
		slices.Sort(ats)
	}
	return u
}

// entry returns what is remembered for repo:tag, or the zero entry.
func (s *State) entry(repo, tag string) stateEntry {
	return s.data.Repositories[repo][tag]
}

// recorded returns the module version remembered for digest at repo:tag.
func (s *State) recorded(repo, tag, digest string) (string, bool) {
	e, ok := s.data.Repositories[repo][tag]
	return e.Module, ok && e.Digest != "" && e.Digest == digest
}

// remember notes that digest at repo:tag holds module version mv, now in
// the log.
func (s *State) remember(repo, tag, digest, mv string) {
	s.put(repo, tag, stateEntry{Digest: digest, Module: mv})
}

// put sets what is remembered for repo:tag.
func (s *State) put(repo, tag string, e stateEntry) {
	r := s.data.Repositories[repo]
	if r == nil {
		r = map[string]stateEntry{}
		s.data.Repositories[repo] = r
	}
	if r[tag] != e {
		r[tag] = e
		s.changed()
	}
}

// forget drops what is remembered for repo:tag.
func (s *State) forget(repo, tag string) {
	if _, ok := s.data.Repositories[repo][tag]; ok {
		delete(s.data.Repositories[repo], tag)
		s.changed()
	}
}

// retain drops what is remembered for the tags of repo not in tags, a
// complete listing of its version tags, sorted: only then is a tag known to
// be gone (deleted, or no longer a version tag), and its entry, or the
// resume point at it, of no more use. A repository no longer listed at all
// is prune's.
func (s *State) retain(repo string, tags []string) {
	for tag := range s.data.Repositories[repo] {
		if _, ok := slices.BinarySearch(tags, tag); !ok {
			s.forget(repo, tag)
		}
	}
	for tag := range s.data.Problems[repo] {
		if _, ok := slices.BinarySearch(tags, tag); !ok && tag != "" {
			s.settle(repo, tag)
		}
	}
	for tag := range s.data.RefusedArtifacts[repo] {
		if _, ok := slices.BinarySearch(tags, tag); !ok {
			s.unrefuse(repo, tag)
		}
	}
	if r, ok := s.data.Repositories[repo]; ok && len(r) == 0 {
		delete(s.data.Repositories, repo)
		s.changed()
	}
	if rrepo, tag := s.resumeAt(); rrepo == repo {
		if _, ok := slices.BinarySearch(tags, tag); !ok {
			s.setResume("")
		}
	}
}

// resumeAt returns the repository and tag of the resume point, or "".
func (s *State) resumeAt() (repo, tag string) {
	i := strings.LastIndex(s.data.Resume, ":") // a tag holds none; a host:port before the path may
	if i < 0 {
		return "", ""
	}
	return s.data.Resume[:i], s.data.Resume[i+1:]
}

// setResume sets the resume point, "host/repository:tag" or "".
func (s *State) setResume(at string) {
	if s.data.Resume != at {
		s.data.Resume = at
		s.changed()
	}
}

// prune drops the repositories no source lists any more: those no source
// covers (its registry and prefix: the source was removed from the
// configuration), and those every source covering them listed completely
// this pass (listed: the catalog, or the configured -repository list)
// without them; and the resume point in such a repository. A source whose
// listing failed, or that the pass did not reach, keeps what it covers: a
// registry down for a pass must not cost its repositories a re-read of
// every artifact.
func (s *State) prune(sources []*Source, listed map[*Source]map[string]bool) {
	for repo := range s.data.Repositories {
		if !stillListed(repo, sources, listed) {
			delete(s.data.Repositories, repo)
			s.changed()
		}
	}
	for repo := range s.data.Problems {
		if !stillListed(repo, sources, listed) {
			delete(s.data.Problems, repo)
			s.changed()
		}
	}
	for repo := range s.data.RefusedArtifacts {
		if !stillListed(repo, sources, listed) {
			delete(s.data.RefusedArtifacts, repo)
			s.changed()
		}
	}
	if repo, _ := s.resumeAt(); repo != "" && !stillListed(repo, sources, listed) {
		s.setResume("")
	}
}

// stillListed reports whether some source covers repo and lists it, or
// did not list its repositories completely this pass (prune).
func stillListed(repo string, sources []*Source, listed map[*Source]map[string]bool) bool {
	for _, src := range sources {
		if !src.covers(repo) {
			continue
		}
		if l, ok := listed[src]; !ok || l[repo] {
			return true
		}
	}
	return false
}

func (s *State) changed() {
	if !s.dirty {
		s.dirty, s.dirtySince = true, time.Now()
	}
}

// saveIfDue saves the state if it has had unsaved changes for d or more.
func (s *State) saveIfDue(ctx context.Context, d time.Duration) error {
	if s.dirty && time.Since(s.dirtySince) >= d {
		return s.Save(ctx)
	}
	return nil
}

// Save stores the state in the database if it changed. The store commits
// it in one transaction: a crash leaves the old state or the new one.
func (s *State) Save(ctx context.Context) error {
	if !s.dirty {
		return nil
	}
	data, err := json.MarshalIndent(s.data, "", "\t")
	if err != nil {
		return fmt.Errorf("failed to encode sync state: %w", err)
	}
	if err := s.store.SetAux(ctx, stateKey, data); err != nil {
		return fmt.Errorf("failed to save sync state: %w", err)
	}
	s.dirty = false
	return nil
}
