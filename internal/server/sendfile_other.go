//go:build !linux

package server

import (
	"log/slog"

	"github.com/valyala/fasthttp"
)

// bodyFiles exists on Linux only (memfd_create and sendfile with an
// offset of its own); elsewhere ServeFast writes every body from the heap.
type bodyFiles struct{}

type bodyFile struct{}

func newBodyFiles(int64, *slog.Logger) *bodyFiles { return nil }

func (*bodyFiles) send(*fasthttp.RequestCtx, *fileSlot, []byte) bool { return false }

func (*bodyFiles) retire() {}

func (*bodyFiles) bytes() int64 { return 0 }
