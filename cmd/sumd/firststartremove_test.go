package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestFirstStartKeyNotRemoved: a first start that failed before its
// database existed removes the signing key it generated, so that the next
// start is a first start again, as its hint says; a removal that failed
// was passed over in silence, and the next start was refused as a key
// without its database. It now says which files to remove.
func TestFirstStartKeyNotRemoved(t *testing.T) {
	t.Chdir(t.TempDir()) // the default log's paths are relative
	defer func(f func(string) error) { removeKeyFile = f }(removeKeyFile)
	removeKeyFile = func(string) error { return errors.New("injected failure") }
	db := config.Database{Name: config.DefaultName, Key: config.DefaultKeyFile(config.DefaultName), DB: config.DefaultDB}
	var stderr strings.Builder
	_, err := openLog(db, openOptions{cmd: "serve", firstStart: true, minFree: 1 << 62, logger: slog.New(slog.DiscardHandler)}, &stderr)
	if err == nil {
		t.Fatal("first start below the disk floor succeeded")
	}
	out := stderr.String()
	if strings.Contains(out, "removed the signing key") || !strings.Contains(out, "injected failure") || !strings.Contains(out, "remove "+db.Key) {
		t.Errorf("first start that could not remove its key says:\n%s\nwant the failure and the files to remove", out)
	}
}
