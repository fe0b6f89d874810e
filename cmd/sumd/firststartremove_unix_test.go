//go:build unix

package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestFirstStartRemovalRace: a first start that failed checked that no
// database existed and then removed the key it generated, so a sumd serve
// -create started meanwhile could create the database with that key in
// between: a log whose key is gone. The removal now holds the key file's
// lock, which a creator holds from reading the key until its database
// exists: a creator run in that window (firstStartRemoving) waits for it
// (keyLockWaiting), then finds the key gone, and no database is left
// without its key.
func TestFirstStartRemovalRace(t *testing.T) {
	t.Chdir(t.TempDir()) // the default log's paths are relative
	db := config.Database{Name: config.DefaultName, Key: config.DefaultKeyFile(config.DefaultName), DB: config.DefaultDB}
	logger := slog.New(slog.DiscardHandler)
	got, ended := make(chan error, 1), make(chan struct{})
	waiting := make(chan struct{}, 1)
	keyLockWaiting = func() { waiting <- struct{}{} }
	firstStartRemoving = func() {
		go func() {
			defer close(ended)
			l, err := openLog(db, openOptions{cmd: "serve", create: true, firstStart: true, minFree: -1, logger: logger}, io.Discard)
			if err == nil {
				l.Close()
			}
			got <- err
		}()
		select {
		case <-waiting:
		case <-ended:
		}
	}
	defer func() { keyLockWaiting, firstStartRemoving = nil, nil }()
	_, err := openLog(db, openOptions{cmd: "serve", firstStart: true, minFree: 1 << 62, logger: logger}, io.Discard)
	if err == nil {
		t.Fatal("first start below the disk floor succeeded")
	}
	<-ended
	err = <-got
	if exists(db.DB) && !exists(db.Key) {
		t.Errorf("a sumd serve -create in a failed first start's removal (%v) left the database %s without its key %s", err, db.DB, db.Key)
	}
}
