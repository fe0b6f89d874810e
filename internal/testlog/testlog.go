// Package testlog is test support: a buffer that a logger, a child process
// or a server goroutine writes while the test reads it, and SameAs, the
// check that a mirror of a transparency log serves what its origin does.
// It is imported only from _test.go files.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
)

// A Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Logger returns a logger at debug level writing text lines into b.
func (b *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
