//go:build linux

package main

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestAddGoSumDiscardWaitingWriter: a writer (sumd serve -create started
// meanwhile) waits for the lock of the new database sumd add -create
// -gosum opened and then discards on a refusal. The file must be gone
// before the lock is let go: a writer that got the lock on it first would
// sign heads on a file no longer at the path. It finds the path empty
// instead (the same-file check of writableOpenFile, Linux only) and fails
// as for a missing database.
func TestAddGoSumDiscardWaitingWriter(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "new.db"), filepath.Join(dir, "new.key")
	if _, err := writeKey("new.example", key, filepath.Join(dir, "new.vkey")); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Add{Database: config.Database{DB: db, Key: key}, Creating: config.Creating{Create: true}}
	sink, err := openLogSink(cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.close()
	opened := openFiles(t, db)
	got, ended := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(ended)
		s, err := itlog.OpenBolt(db, itlog.BoltOptions{LockTimeout: 10 * time.Second})
		if err == nil {
			s.Close()
		}
		got <- err
	}()
	// Opened, the writer waits for the lock the sink holds.
	waitOpened(t, db, opened, ended)
	// Once the lock is let go, and before discard goes on, the writer
	// takes it and returns.
	discardClosed = func() { <-ended }
	defer func() { discardClosed = nil }()
	sink.discard()
	if err := <-got; !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a writer waiting for the lock of the database sumd add -create discarded: %v, want an fs.ErrNotExist: it had the file once unlocked, before it was removed", err)
	}
	if exists(db) {
		t.Errorf("%s is left behind", db)
	}
}
