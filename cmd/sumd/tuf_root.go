package main

import (
	"fmt"
	"io"
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
	ch, err := rootChange(cfg, stderr)
	if err != nil {
		return err
	}
	v, err := repo.RotateRoot(ch, keyDirs(cfg.Keys))
	if err != nil {
		return withHint(err, offlineKeysHint+"; a new root needs a threshold of the current root keys and of its own")
	}
	root := filepath.Join(cfg.Dir, "metadata", fmt.Sprintf("%d.root.json", v))
	fmt.Fprintf(stderr, "sumd: wrote root version %d; clients pinned to any earlier version walk to it\n", v)
	if err := signOnlineOrDefer(repo, cfg.TUFRepo, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, root)
	return nil
}

// rootChange builds the change cfg asks for, reading or generating the
// new keys.
func rootChange(cfg *config.TUFRotateRoot, stderr io.Writer) (tuf.RootChange, error) {
	now := time.Now()
	ch := tuf.RootChange{
		RootThreshold: cfg.RootThreshold, TargetsThreshold: cfg.TargetsThreshold,
		Expires: now.Add(cfg.RootExpiry), TargetsExpires: now.Add(cfg.TargetsExpiry),
	}
	var err error
	if ch.RootKeys, err = newKeys(cfg.NewRootKey, metadata.ROOT, stderr); err != nil {
		return ch, err
	}
	if ch.TargetsKeys, err = newKeys(cfg.NewTargetsKey, metadata.TARGETS, stderr); err != nil {
		return ch, err
	}
	if cfg.RotateOnline {
		dir := onlineKeys(cfg.TUFRepo)
		if ch.SnapshotKey, err = generateRoleKey(dir, metadata.SNAPSHOT, stderr); err != nil {
			return ch, err
		}
		if ch.TimestampKey, err = generateRoleKey(dir, metadata.TIMESTAMP, stderr); err != nil {
			return ch, err
		}
		fmt.Fprintf(stderr, "sumd: delete the old online keys from %s once sumd serve signs with the new ones\n", dir)
	}
	return ch, nil
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

// generateRoleKey generates a key of role in dir, named as tuf init names
// keys.
func generateRoleKey(dir, role string, stderr io.Writer) (*tuf.Key, error) {
	k, err := tuf.GenerateKey()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, tuf.KeyFileName(role, k))
	if err := k.WriteFile(file); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "sumd: generated the new %s key %s\n", role, file)
	return k, nil
}
