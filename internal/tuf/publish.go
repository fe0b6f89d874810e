package tuf

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// DefaultTargetsExpiry is how long a targets version is valid unless
// configured otherwise. Renewing it needs the offline targets key, so it
// is long: a yearly ceremony, warned about 30 days ahead by sumd serve.
const DefaultTargetsExpiry = 365 * 24 * time.Hour

// Publish signs and writes the next targets version, listing db and
// expiring at expires, with the targets keys found in keyDirs. It does not
// touch the snapshot or the timestamp: SignOnline does, here if the online
// keys are at hand, or in sumd serve on its next tick. It returns the new
// targets version.
func (r *Repo) Publish(db *Database, keyDirs []string, expires time.Time) (int64, error) {
	if err := db.check(); err != nil {
		return 0, err
	}
	unlock, err := lock(r.dir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return 0, err
	}
	if name, err := databaseName(slices.Collect(maps.Keys(st.targets.Signed.Targets))); err == nil && name != fileName(db.Name) {
		return 0, fmt.Errorf("this repository publishes database %s, not %s: a repository describes one database", name, db.Name)
	}
	keys, err := roleKeys(st.root, metadata.TARGETS, keyDirs)
	if err != nil {
		return 0, err
	}
	// Past the newest version that verifies, stepping over the names
	// taken by files that do not.
	v, err := r.freeVersion(metadata.TARGETS, st.targets.Signed.Version)
	if err != nil {
		return 0, err
	}
	return v, r.writeTargets(st.root, db, v, keys, expires)
}

// writeTargets writes db's target files and then targets version v
// listing them, signed by keys, checking first that they meet the root's
// targets threshold.
func (r *Repo) writeTargets(root *metadata.Metadata[metadata.RootType], db *Database, v int64, keys []*Key, expires time.Time) error {
	files, err := db.targets()
	if err != nil {
		return err
	}
	t := metadata.Targets(expires.UTC().Truncate(time.Second))
	t.Signed.Version = v
	for path, data := range files {
		if t.Signed.Targets[path], err = metadata.TargetFile().FromBytes(path, data, "sha256"); err != nil {
			return fmt.Errorf("failed to describe target %s: %w", path, err)
		}
		if err := writeTarget(filepath.Join(r.dir, targetFile(path, data)), data); err != nil {
			return err
		}
	}
	data, err := signAndEncode(t, keys)
	if err == nil {
		err = root.VerifyDelegate(metadata.TARGETS, t)
	}
	if err != nil {
		return fmt.Errorf("failed to sign targets version %d: %w", v, err)
	}
	return r.writeVersion(metadata.TARGETS, v, data)
}

// writeVersion writes m, signed, as a new versioned file of role.
func (r *Repo) writeVersion(role string, v int64, data []byte) error {
	return writeNew(filepath.Join(r.dir, metadataDir, versionedName(v, role)), data)
}

// Published returns the database the served targets publish, read from
// the target files and checked against the targets' lengths and hashes.
func (r *Repo) Published() (*Database, error) {
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	name, err := databaseName(slices.Collect(maps.Keys(st.targets.Signed.Targets)))
	if err != nil {
		return nil, err
	}
	var files [2][]byte
	for i, path := range []string{"sumdb/" + name + ".vkey", "sumdb/" + name + ".json"} {
		tf := st.targets.Signed.Targets[path]
		if tf == nil {
			return nil, fmt.Errorf("targets version %d lists no %s", st.targets.Signed.Version, path)
		}
		data, err := readCapped(filepath.Join(r.dir, hashedTargetFile(path, tf.Hashes["sha256"])), maxTarget)
		if err == nil {
			err = tf.VerifyLengthHashes(data)
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read target %s: %w", path, err)
		}
		files[i] = data
	}
	return ParseDatabase(files[0], files[1])
}
