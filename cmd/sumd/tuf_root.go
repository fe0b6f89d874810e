package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/tuf"
)

// tufRotateRoot writes the next root version: new root, targets or online
// keys, new thresholds, or only a new expiry.
func tufRotateRoot(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadTUFRotateRoot, args, stderr, onlyFlags("tuf rotate-root"))
	if err != nil {
		return err
	}
	repo, err := openRepo(cfg.Dir)
	if err != nil {
		return err
	}
	ch, online, err := rootChange(cfg, stderr)
	if err != nil {
		online.remove()
		return err
	}
	before := rootVersion(repo)
	v, err := repo.RotateRoot(ch, keyDirs(cfg.Keys))
	if err != nil {
		return rotateFailed(repo, before, online, err, stderr)
	}
	online.report(stderr)
	root := filepath.Join(cfg.Dir, "metadata", fmt.Sprintf("%d.root.json", v))
	fmt.Fprintf(stderr, "sumd: wrote root version %d; clients pinned to any earlier version walk to it\n", v)
	if err := signOnlineOrDefer(repo, cfg.TUFRepo, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, root)
	return nil
}

// rotateFailed is tufRotateRoot's answer to RotateRoot's failure err,
// the root version being before: the online keys it generated are
// removed only if no new root was written. One that was (its directory
// not synced, say) names them, so they stay, and are reported as after a
// success: sumd serve must sign with them, and the old ones go.
func rotateFailed(repo *tuf.Repo, before int64, online *newOnlineKeys, err error, stderr io.Writer) error {
	after := rootVersion(repo)
	if before > 0 && after == before {
		online.remove()
		return withHint(err, offlineKeysHint+"; a new root needs a threshold of the current root keys and of its own")
	}
	if after > before {
		fmt.Fprintf(stderr, "sumd: root version %d was written before the failure\n", after)
	}
	online.report(stderr)
	return withHint(err, "the new root may be in place: run sumd tuf status before trying again")
}

// rootVersion returns the version of the repository's newest root, 0 if
// it cannot be read.
func rootVersion(repo *tuf.Repo) int64 {
	st, err := repo.Status()
	if err != nil {
		return 0
	}
	return st.Versions[metadata.ROOT]
}

// newOnlineKeys are the online key files -rotate-online generated. They
// are written before the root naming them, so that a root never names a
// key lost in a crash, and removed if no root names them: a failed
// rotation leaves no stray key beside the ones in use.
type newOnlineKeys struct {
	dir   string
	files []string
}

// remove deletes the files, which no root names.
func (k *newOnlineKeys) remove() {
	for _, f := range k.files {
		os.Remove(f)
	}
}

// report tells the operator about the files, once a root names them.
func (k *newOnlineKeys) report(stderr io.Writer) {
	for _, f := range k.files {
		fmt.Fprintf(stderr, "sumd: generated the new online key %s\n", f)
	}
	if len(k.files) > 0 {
		fmt.Fprintf(stderr, "sumd: delete the old online keys from %s once sumd serve signs with the new ones\n", k.dir)
	}
}

// rootChange builds the change cfg asks for, reading or generating the
// new keys; the online keys it generated are returned, for the caller to
// report or remove.
func rootChange(cfg *config.TUFRotateRoot, stderr io.Writer) (tuf.RootChange, *newOnlineKeys, error) {
	now := time.Now()
	ch := tuf.RootChange{
		RootThreshold: cfg.RootThreshold, TargetsThreshold: cfg.TargetsThreshold,
		Expires: now.Add(cfg.RootExpiry), TargetsExpires: now.Add(cfg.TargetsExpiry),
	}
	online := &newOnlineKeys{dir: onlineKeys(cfg.TUFRepo)}
	if err := keyDirsNotOnline(online.dir, keyDirs(cfg.Keys)); err != nil {
		return ch, online, err
	}
	if err := offlineKeysNotOnline(online.dir, cfg.NewRootKey, cfg.NewTargetsKey); err != nil {
		return ch, online, err
	}
	var err error
	if ch.RootKeys, err = newKeys(cfg.NewRootKey, metadata.ROOT, stderr); err != nil {
		return ch, online, err
	}
	if ch.TargetsKeys, err = newKeys(cfg.NewTargetsKey, metadata.TARGETS, stderr); err != nil {
		return ch, online, err
	}
	if cfg.RotateOnline {
		if err := checkPlanted(online.dir, os.Geteuid()); err != nil {
			return ch, online, err
		}
		if ch.SnapshotKey, err = online.generate(metadata.SNAPSHOT); err != nil {
			return ch, online, err
		}
		if ch.TimestampKey, err = online.generate(metadata.TIMESTAMP); err != nil {
			return ch, online, err
		}
	}
	return ch, online, nil
}

// keyDirsNotOnline refuses a -keys directory that is the online keys',
// in tuf init, publish and rotate-root: the root and targets keys written
// (by tuf init) or found there would be keys the server's machine holds,
// and signing with them would hide that at every ceremony.
func keyDirsNotOnline(online string, dirs []string) error {
	for _, dir := range dirs {
		if tuf.SameDir(dir, online) {
			return usageError(fmt.Errorf("-keys %s is the online keys' directory, which stays where the server signs: the root and targets keys belong offline", dir),
				"pass -keys with the directories of the offline keys; move any root or targets key in "+online+" offline")
		}
	}
	return nil
}

// offlineKeysNotOnline refuses new root or targets key files in the
// online keys' directory, as tuf init does, before any is generated: that
// directory stays where the server signs, so an offline key written there
// would stay on the server's machine.
func offlineKeysNotOnline(online string, lists ...string) error {
	for _, files := range lists {
		if files == "" {
			continue
		}
		for file := range strings.SplitSeq(files, ",") {
			if keyFileIn(file, online) {
				return usageError(fmt.Errorf("the new offline key %s would be in %s, the online keys' directory, which stays where the server signs", file, online),
					"give the new root and targets keys a directory of their own, to move offline")
			}
		}
	}
	return nil
}

// keyFileIn reports whether the key file is in dir, or is a symbolic link
// to a file there: an existing file is read as the new key, wherever its
// link leads. (A link to no file is refused when the key is written.)
func keyFileIn(file, dir string) bool {
	if tuf.SameDir(filepath.Dir(file), dir) {
		return true
	}
	target, err := filepath.EvalSymlinks(file)
	return err == nil && tuf.SameDir(filepath.Dir(target), dir)
}

// newKeys reads the key files of a comma-separated list, generating those
// that do not exist. Their names must start with "<role>-" so that -keys
// DIR finds them at the next ceremony.
func newKeys(files, role string, stderr io.Writer) ([]*tuf.Key, error) {
	if files == "" {
		return nil, nil
	}
	var keys []*tuf.Key
	for file := range strings.SplitSeq(files, ",") {
		base := filepath.Base(file)
		if !strings.HasPrefix(base, role+"-") || !strings.HasSuffix(base, ".key") {
			return nil, usageError(fmt.Errorf("new %s key file %s: want a name %s-<anything>.key", role, file, role),
				"sumd tuf finds a role's keys in -keys directories by that name")
		}
		k, err := readOrGenerateKey(file, role, stderr)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func readOrGenerateKey(file, role string, stderr io.Writer) (*tuf.Key, error) {
	if err := checkPlanted(file, os.Geteuid()); err != nil {
		return nil, err
	}
	if exists(file) {
		return tuf.ReadKeyFile(file)
	}
	k, err := tuf.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := k.WriteFile(file); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "sumd: generated the new %s key %s (id %.8s)\n", role, file, k.ID())
	return k, nil
}

// generate generates an online key of role in k.dir, named as tuf init
// names keys.
func (k *newOnlineKeys) generate(role string) (*tuf.Key, error) {
	key, err := tuf.GenerateKey()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(k.dir, tuf.KeyFileName(role, key))
	if err := key.WriteFile(file); err != nil {
		return nil, err
	}
	k.files = append(k.files, file)
	return key, nil
}
