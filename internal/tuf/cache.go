package tuf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A client's cache (ClientOptions.CacheDir) holds the metadata go-tuf's
// updater verified, which it reads back at the next run: the newest root,
// and the timestamp, snapshot and targets a rollback is detected against.
// go-tuf writes it through a temporary file and a rename but syncs
// neither the file nor the directory, so a power cut may leave an empty
// root.json or timestamp.json. It therefore never writes the cache: it
// works in a directory of its own, seeded from the cache (seedCache), and
// what it kept there, all verified, is then written into the cache
// durably (keepCache).

// seedCache copies the metadata files cached in cache, if any, into work,
// where go-tuf looks for them. The root is not copied: go-tuf writes the
// one it is given (trustedRoot) itself. A file that is not metadata of
// its role (one a crash left empty while an older sumd let go-tuf write
// it unsynced) is left out with a warning, as a damaged root is: go-tuf
// would fail every run on it ("unexpected end of JSON input", naming no
// file), and the run replaces it with metadata it verifies against the
// trusted root, losing only the rollback check against it.
func seedCache(cache, work string, log *slog.Logger) error {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("failed to create TUF work directory: %w", err)
	}
	if cache == "" {
		return nil
	}
	entries, err := os.ReadDir(cache)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to list the TUF cache: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || name == metadata.ROOT+".json" {
			continue
		}
		path := filepath.Join(cache, name)
		data, err := readCapped(path, maxMetadata)
		if err != nil {
			log.Warn("ignoring cached TUF metadata (a symbolic link is never followed: make it a regular file)", "path", path, "err", err)
			continue
		}
		if err := parseCached(name, data); err != nil {
			log.Warn("ignoring cached TUF metadata that is not metadata of its role (a crash while an older sumd wrote it, which did not sync it?); "+
				"the verified metadata replaces it", "path", path, "err", err)
			continue
		}
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			return fmt.Errorf("failed to copy the TUF cache: %w", err)
		}
	}
	return nil
}

// parseCached parses the cached metadata file name, without verifying it:
// go-tuf does that, and ignores by itself metadata that does not verify.
func parseCached(name string, data []byte) error {
	var err error
	switch name {
	case metadata.TIMESTAMP + ".json":
		_, err = metadata.Timestamp().FromBytes(data)
	case metadata.SNAPSHOT + ".json":
		_, err = metadata.Snapshot().FromBytes(data)
	default: // targets.json and delegated targets
		_, err = metadata.Targets().FromBytes(data)
	}
	return err
}

// keepCache writes the metadata files in work that differ from those in
// cache into cache, each synced before it is renamed into place and its
// directory synced after: a crash leaves each file as it was or as
// verified. The root goes first: it is what the next run trusts.
func keepCache(work, cache string) error {
	if cache == "" {
		return nil
	}
	entries, err := os.ReadDir(work)
	if err != nil {
		return fmt.Errorf("failed to list the TUF work directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	if i := slices.Index(names, metadata.ROOT+".json"); i > 0 {
		names[0], names[i] = names[i], names[0]
	}
	if err := mkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("failed to create the TUF cache: %w", err)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(work, name))
		if err != nil {
			return fmt.Errorf("failed to read verified TUF metadata: %w", err)
		}
		path := filepath.Join(cache, name)
		if old, err := readCapped(path, maxMetadata); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := replaceFile(path, data); err != nil {
			return fmt.Errorf("failed to keep verified TUF metadata in the cache: %w", err)
		}
	}
	return nil
}
