package server

import (
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Large answers that never change (full data tiles, about 43 KB each) are
// sent by ServeFast with sendfile(2) from a copy in a memory file instead
// of being copied from the heap into the socket: on this machine the copy
// was a quarter of the CPU of serving a data tile from the cache, and
// sendfile lets the kernel hand the file's pages to the connection
// instead. The socket is corked around the header write and the sendfile
// (TCP_CORK, as nginx's tcp_nopush), so that both leave in one segment
// train, as a single write would.
//
// The copy is made on the first request for a body that ServeFast sends
// over plain TCP, into the current file of Server.files, whose size is
// bounded by Options.CacheBytes: when it is full, a new file takes its
// place, unless the one it replaced is still open (the heap serves
// meanwhile), and the old one is closed once the last answer sending from
// it is done. Where there is no memory file (another OS, memfd_create
// refused), or over TLS, or for a HEAD, or when the body goes through any
// writer but fasthttp's own to the connection (a compressing handler),
// the heap copy is written as before.
//
// Only fasthttp's Server may write a response set up so: a handler around
// ServeFast must not serialize it itself (Response.String, WriteTo or
// Write), which would send the body to the socket past the headers it
// writes elsewhere.
//
// ServeHTTP (net/http) does not use it: net/http sends a file only from an
// *os.File's own offset, which concurrent answers from one file would
// share.

// sendfileMin is the smallest body sent with sendfile. Below it one write
// from the heap costs less than the extra system calls (measured with
// 8 KiB bodies, a full hash tile's size: sendfile was slower).
const sendfileMin = 16 << 10

// A fileSlot is where a cached body's copy in a memory file is, once one
// has been made: a *fileSpan whose file may have been retired since, in
// which case another copy is made in the current file.
type fileSlot struct{ at atomic.Pointer[fileSpan] }

// A fileSpan is a body's bytes at off, n bytes long, in memory file f.
type fileSpan struct {
	f   *bodyFile
	off int64
	n   int
}

// sendFromFile sets rp's body, a cached one of at least sendfileMin bytes,
// as c's response body sent from a memory file, and reports whether it
// could; if not, the caller sets the body from the heap.
func (s *Server) sendFromFile(c *fasthttp.RequestCtx, rp *reply) bool {
	if rp.file == nil || rp.tail != nil || c.IsHead() || s.files == nil {
		return false
	}
	return s.files.send(c, rp.file, rp.body)
}
