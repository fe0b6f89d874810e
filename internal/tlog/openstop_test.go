package tlog

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestOpenStopped: a server told to stop while Open verified its database
// (minutes with VerifyFull) waited for the end, as Open took no context
// (sumd serve, until systemd's TimeoutStopSec and its SIGKILL). A closed
// Options.Stop ends the verification with ErrOpenStopped, which says
// nothing against the database (not ErrCorrupt), and the file opens again.
func TestOpenStopped(t *testing.T) {
	k := testKey(t, "stop.example")
	path := filepath.Join(t.TempDir(), "sumd.db")
	l := openTest(t, path, k, VerifyTail)
	for i := range 300 { // past one level-0 tile
		if _, err := l.Add(context.Background(), record(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	close(stop)
	l, err := Open(path, Options{Keys: []*Key{k}, Verify: VerifyFull, Stop: stop, Logger: quietLogger()})
	if err == nil {
		l.Close()
		t.Fatal("Open with Stop closed verified the whole database, want ErrOpenStopped")
	}
	if !errors.Is(err, ErrOpenStopped) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with Stop closed = %v, want ErrOpenStopped and not ErrCorrupt", err)
	}
	openTest(t, path, k, VerifyFull).Close()
}
