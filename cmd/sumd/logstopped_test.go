package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// fullStore is a store on a disk that fills up: once full is set, every
// commit fails as bbolt's does on a full disk, ambiguously.
type fullStore struct {
	itlog.Store
	full bool
}

func (s *fullStore) Commit(ctx context.Context, b *itlog.Batch) error {
	if s.full {
		return fmt.Errorf("failed to commit to data/sumd.db: %w", &fs.PathError{Op: "write", Path: "data/sumd.db", Err: syscall.ENOSPC})
	}
	return s.Store.Commit(ctx, b)
}

// TestLogStoppedDiskFull: a log stopped by a full disk gets the hint to
// free space on the disk of the file that failed, not to check the disk's
// health; and what the caller said of the records added before the
// failure is kept (it was replaced by the log's own error).
func TestLogStoppedDiskFull(t *testing.T) {
	skey, _, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := itlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	s := &fullStore{Store: itlog.NewMemStore()}
	l, err := itlog.OpenStore(s, itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addN(t, l, 0, 5)
	s.full = true
	_, err = l.Add(context.Background(), syntheticRecords(5, 5)...)
	if !errors.Is(err, itlog.ErrFatal) {
		t.Fatalf("Add on a full disk = %v, want ErrFatal", err)
	}
	err = logStopped(l, fmt.Errorf("%w (5 records were added before this failure; once its cause is mended, running the same command again adds the rest)", err))
	var ce *cliError
	if !errors.As(err, &ce) {
		t.Fatalf("logStopped = %v, want an error with a hint", err)
	}
	if !strings.Contains(err.Error(), "5 records were added before this failure") || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("logStopped's error %q lost what was added, or the cause", err)
	}
	if want := "the disk holding data/sumd.db is full: free space on it, then run the same command again"; !strings.HasPrefix(ce.hint, want) || strings.Contains(ce.hint, "SMART") {
		t.Errorf("hint %q, want it to start %q", ce.hint, want)
	}

	// Another cause keeps the hint to check the disk.
	if got := stoppedHint(fmt.Errorf("%w: %w", itlog.ErrFatal, syscall.EIO)); !strings.Contains(got, "check the disk (dmesg, SMART)") {
		t.Errorf("stoppedHint of EIO = %q", got)
	}
}
