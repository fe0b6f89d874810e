package modhash

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"
)

// TestHashZipContextCancelled: a hash of a large zip whose context is done
// stops with the context's error, whether the zip is read from a file or
// memory, and hands no sums back: a caller nobody waits for must not spend
// its fetch slot hashing on. A small zip, hashed in milliseconds, is
// hashed to its verdict.
func TestHashZipContextCancelled(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	noise := make([]byte, 2*wholeZip) // incompressible, so the zip is read from the file
	rand.NewChaCha8([32]byte{}).Read(noise)
	small := createZip(t, m, fileMap("go.mod", "module example.com/m\n", "a.go", "package a\n"))
	large := createZip(t, m, fileMap("go.mod", "module example.com/m\n", "noise", string(noise)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, path := range map[string]string{"small": small, "large": large} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if (name == "large") != (len(data) > wholeZip) {
			t.Fatalf("%s zip of %d bytes", name, len(data))
		}
		if _, err := HashZip(m, path, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantErr := len(data) > wholeZip
		if s, err := HashZipContext(ctx, m, path, nil); wantErr != errors.Is(err, context.Canceled) || !wantErr && err != nil {
			t.Errorf("%s: HashZipContext = %v, %v; want context.Canceled %v", name, s, err, wantErr)
		}
		if s, err := HashZipDataContext(ctx, m, data, nil); wantErr != errors.Is(err, context.Canceled) || !wantErr && err != nil {
			t.Errorf("%s: HashZipDataContext = %v, %v; want context.Canceled %v", name, s, err, wantErr)
		}
	}
}

// TestHashZipBudgetCancelled: a hash waiting for the MaxFilesInFlight
// budget gives up when its context ends, instead of queueing on for a
// caller that left.
func TestHashZipBudgetCancelled(t *testing.T) {
	defer func(b *semaphore.Weighted) { inFlight = b }(inFlight)
	inFlight = semaphore.NewWeighted(MaxFilesInFlight)
	if !inFlight.TryAcquire(MaxFilesInFlight) {
		t.Fatal("budget not free")
	}
	m := mv("example.com/m", "v1.0.0")
	name := writeTemp(t, zipOfEmpty(t, 10, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := HashZipContext(ctx, m, name, nil); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("HashZipContext with the budget spent: %v, want the deadline's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HashZipContext still waits for the budget after its context ended")
	}
}
