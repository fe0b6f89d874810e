package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateVersion is the format of the state file; another is refused.
const stateVersion = 1

// State is what sync remembers between passes: per repository and version
// tag, the manifest digest that was recorded from it and its module
// version, so that the next pass neither fetches nor verifies it again. A
// tag moved to another digest is examined again, and so is a digest under
// a tag it was not recorded from (its placement must be checked there). It lives in a JSON file
// next to the database (DefaultStatePath), because the log (internal/tlog)
// keeps nothing but the log.
//
// The state is only a cache. Sync re-checks with the log that a remembered
// version is there before it skips it, and recording is idempotent (the
// same hashes again are a no-op), so a lost, stale or deleted state file
// costs a pass that re-reads every artifact, never a wrong record. A
// damaged one is refused with an error saying it can be deleted.
//
// A State is used by one sync pass at a time: sync runs under the lock of
// the database file (sumd sync opens it; sumd serve holds it).
type State struct {
	path string
	data stateFile
	// dirty means data has changes Save has not written yet.
	dirty bool
}

type stateFile struct {
	Version int `json:"version"`
	// Repositories maps "host/repository" to tag to what was recorded.
	Repositories map[string]map[string]stateEntry `json:"repositories"`
}

// A stateEntry is the artifact recorded from one tag.
type stateEntry struct {
	Digest string `json:"digest"` // manifest digest
	Module string `json:"module"` // "path@version"
}

// DefaultStatePath is the state file of the database at db.
func DefaultStatePath(db string) string { return db + ".oci-sync.json" }

// LoadState reads the state file at path; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	s := &State{path: path, data: stateFile{Version: stateVersion, Repositories: map[string]map[string]stateEntry{}}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read sync state: %w", err)
	}
	if err := json.Unmarshal(data, &s.data); err != nil {
		return nil, fmt.Errorf("failed to parse sync state %s: %w (it is only a cache: delete it and the next sync re-reads every artifact)", path, err)
	}
	if s.data.Version != stateVersion {
		return nil, fmt.Errorf("sync state %s has format version %d, want %d (delete it and the next sync re-reads every artifact)", path, s.data.Version, stateVersion)
	}
	if s.data.Repositories == nil {
		s.data.Repositories = map[string]map[string]stateEntry{}
	}
	return s, nil
}

// recorded returns the module version remembered for digest at repo:tag.
func (s *State) recorded(repo, tag, digest string) (string, bool) {
	e, ok := s.data.Repositories[repo][tag]
	return e.Module, ok && e.Digest == digest
}

// remember notes that digest at repo:tag holds module version mv, now in
// the log.
func (s *State) remember(repo, tag, digest, mv string) {
	r := s.data.Repositories[repo]
	if r == nil {
		r = map[string]stateEntry{}
		s.data.Repositories[repo] = r
	}
	if e := (stateEntry{Digest: digest, Module: mv}); r[tag] != e {
		r[tag] = e
		s.dirty = true
	}
}

// forget drops what is remembered for repo:tag.
func (s *State) forget(repo, tag string) {
	if _, ok := s.data.Repositories[repo][tag]; ok {
		delete(s.data.Repositories[repo], tag)
		s.dirty = true
	}
}

// Save writes the state if it changed, atomically: a temporary file in the
// same directory, synced, then renamed over the old one, so a crash leaves
// the old state or the new one, never a torn file.
func (s *State) Save() error {
	if !s.dirty {
		return nil
	}
	data, err := json.MarshalIndent(s.data, "", "\t")
	if err != nil {
		return fmt.Errorf("failed to encode sync state: %w", err)
	}
	if err := writeAtomic(s.path, append(data, '\n')); err != nil {
		return fmt.Errorf("failed to save sync state: %w", err)
	}
	s.dirty = false
	return nil
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// Sync the directory so the rename itself survives a crash.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
