//go:build linux

package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// bodyFiles are a Server's memory files holding copies of cached bodies
// for sendfile (see sendfile.go): one current file of at most max bytes,
// and retired ones still open while answers send from them.
type bodyFiles struct {
	max  int64
	log  *slog.Logger
	held atomic.Int64 // bytes in files not yet closed
	open atomic.Int64 // files not yet closed (reserve's bound)

	// For tests: files made, answers set to be sent from them, and sent
	// with sendfile.
	made, sends, sent atomic.Int64

	mu     sync.Mutex
	cur    *bodyFile // nil before the first copy and after retire
	broken bool      // memory files are not to be had here: none are used
	closed bool      // retired with the Server
	warned time.Time // when a failure was last logged
}

// newBodyFiles returns the memory files of a Server whose cache holds at
// most max bytes: each file holds as much (see reserve), or nil if max is
// not positive (no cache, nothing to copy).
func newBodyFiles(max int64, log *slog.Logger) *bodyFiles {
	if max <= 0 {
		return nil
	}
	return &bodyFiles{max: max, log: log}
}

// A bodyFile is one memory file (memfd_create(2): anonymous memory with a
// file descriptor, never on disk). Its descriptor is closed when the last
// reference is released: the one it holds while it is the current file,
// and one for each copy being made into it or answer being sent from it.
type bodyFile struct {
	fd      int
	parent  *bodyFiles
	size    int64 // bytes reserved, guarded by parent.mu
	refs    atomic.Int64
	retired atomic.Bool
}

// acquire takes a reference to f for sending from it, unless f is retired
// (a copy is then made in the current file) or closed.
func (f *bodyFile) acquire() bool {
	if f.retired.Load() {
		return false
	}
	for {
		r := f.refs.Load()
		if r <= 0 {
			return false
		}
		if f.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (f *bodyFile) release() {
	if f.refs.Add(-1) == 0 {
		unix.Close(f.fd)
		f.parent.held.Add(-f.size)
		f.parent.open.Add(-1)
	}
}

// retire drops the file's own reference: no new copy goes into it, no new
// answer sends from it, and it closes once the last one in flight is done.
func (f *bodyFile) retire() {
	f.retired.Store(true)
	f.release()
}

// retire closes the files once no answer sends from them; the Server is
// gone (a cleanup of New).
func (fs *bodyFiles) retire() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true
	if fs.cur != nil {
		fs.cur.retire()
		fs.cur = nil
	}
}

// reserve returns a file with n bytes reserved for the caller at off,
// and a reference to it, or nil if there is no memory file to be had.
//
// The files open hold at most 2×max bytes: the current one, and the one
// it replaced while answers still send from it. A full file is replaced
// only when no file it replaced is still open: an answer to a client that
// does not read holds its file until the write deadline, and clients that
// keep doing so would otherwise keep any number open. Meanwhile bodies
// the full file lacks are written from the heap.
func (fs *bodyFiles) reserve(n int64) (*bodyFile, int64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.broken || fs.closed || n > fs.max {
		return nil, 0
	}
	if fs.cur == nil || fs.cur.size+n > fs.max {
		replaced := fs.open.Load() // files open but the current one
		if fs.cur != nil {
			replaced--
		}
		if replaced > 0 {
			return nil, 0
		}
		fd, err := unix.MemfdCreate("sumd-tiles", unix.MFD_CLOEXEC)
		if err != nil {
			fs.fail("failed to create a memory file", err)
			return nil, 0
		}
		if fs.cur != nil {
			fs.cur.retire()
		}
		fs.cur = &bodyFile{fd: fd, parent: fs}
		fs.cur.refs.Store(1)
		fs.made.Add(1)
		fs.open.Add(1)
	}
	f := fs.cur
	off := f.size
	f.size += n
	fs.held.Add(n)
	f.refs.Add(1) // the caller's; f keeps its own while it is current (fs.mu)
	return f, off
}

// fail logs a failure to make, write or send a memory file; the body is written
// from the heap. Where memory files or sendfile cannot work at all (no
// memfd_create, or a sandbox refusing it) none is tried again; other
// failures (out of descriptors or memory) are tried again by the next
// request, and logged at most once a minute. Call with fs.mu held.
func (fs *bodyFiles) fail(what string, err error) {
	if fs.broken {
		return
	}
	if unsupported(err) {
		fs.broken = true
		if fs.cur != nil {
			fs.cur.retire()
			fs.cur = nil
		}
		fs.log.Warn("read listener: "+what+" for sending data tiles with sendfile; sending them from memory from now on", "err", err)
		return
	}
	if now := time.Now(); now.Sub(fs.warned) >= time.Minute {
		fs.warned = now
		fs.log.Warn("read listener: "+what+" for sending a data tile with sendfile; sending it from memory", "err", err)
	}
}

// span returns where body, the cached body slot belongs to, is in a
// memory file, copying it there first if it is in none or in a retired
// one, with a reference for the caller to release; nil if it cannot be.
func (fs *bodyFiles) span(slot *fileSlot, body []byte) *fileSpan {
	old := slot.at.Load()
	if old != nil && old.f.acquire() {
		return old
	}
	f, off := fs.reserve(int64(len(body)))
	if f == nil {
		return nil
	}
	if err := pwriteAll(f.fd, body, off); err != nil {
		f.release()
		fs.mu.Lock()
		fs.fail("failed to write a memory file", err)
		fs.mu.Unlock()
		return nil
	}
	// Two requests may copy the same body at once: either copy serves
	// its own request, and the slot keeps the first stored.
	sp := &fileSpan{f: f, off: off, n: len(body)}
	slot.at.CompareAndSwap(old, sp)
	return sp
}

// unsupported reports whether err says that memory files or sendfile
// cannot work here at all, rather than failing for now.
func unsupported(err error) bool {
	return errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n <= 0:
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// send sets body, cached in slot, as c's response body sent from a memory
// file, if c is a plain TCP connection and there is a file to be had.
func (fs *bodyFiles) send(c *fasthttp.RequestCtx, slot *fileSlot, body []byte) bool {
	tc, ok := c.Conn().(*net.TCPConn) // not TLS: the kernel cannot encrypt
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	sp := fs.span(slot, body)
	if sp == nil {
		return false
	}
	st := &sendStream{span: sp, body: body, conn: rc, files: fs}
	rc.Control(func(fd uintptr) {
		st.corked.Store(unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1) == nil)
	})
	// fasthttp writes the headers into its buffer and flushes them (held
	// back by the cork) before it calls WriteTo, which sends the body on
	// the connection itself.
	c.Response.ImmediateHeaderFlush = true
	c.Response.SetBodyStream(st, len(body))
	fs.sends.Add(1)
	return true
}

// A sendStream is one answer's body sent from a memory file. fasthttp
// calls WriteTo to send it (or Read, if a handler around ServeFast wraps
// the body) and Close when the answer is done, sent or not. Only WriteTo's
// sendfile reads the file; Read and WriteTo's other ways read body, the
// cached bytes the file holds a copy of, so that a Close that releases the
// file while a wrapping handler's goroutine still reads (fasthttp's
// compression does that when the client goes) reads nothing closed.
type sendStream struct {
	span   *fileSpan
	body   []byte // the cached body; never modified
	conn   syscall.RawConn
	files  *bodyFiles
	sent   int
	corked atomic.Bool
	closed bool
}

var (
	_ fasthttp.BodyWriterTo = (*sendStream)(nil)
	_ io.Closer             = (*sendStream)(nil)
)

func (st *sendStream) SupportsBodyWriteTo() bool { return true }

// WriteTo sends the rest of the body with sendfile(2) from the file at
// the span's offset (never the file's own offset, which every answer
// shares), waiting for the socket as a write does, within the write
// deadline fasthttp set. It does so only when w is fasthttp's writer of a
// fixed-size body to the connection, whose buffer the header flush
// emptied: anything else between (compression, chunking, a copy of the
// body) gets the bytes through w. Then it uncorks the socket. If sendfile
// cannot work here at all, memory files are given up and the body goes
// through w.
func (st *sendStream) WriteTo(w io.Writer) (int64, error) {
	defer st.uncork()
	if reflect.TypeOf(w) != fixedSizeWriter() {
		return st.writeBody(w)
	}
	n, err, gaveUp := st.sendfile()
	if gaveUp {
		return st.writeBody(w)
	}
	st.files.sent.Add(1) // before the uncork lets the answer go
	return n, err
}

// sendfile sends the rest of the body from the file. gaveUp says that
// sendfile cannot work here at all and sent nothing: memory files are
// given up, and the caller sends the body otherwise.
func (st *sendStream) sendfile() (written int64, err error, gaveUp bool) {
	start := st.sent
	var serr error
	err = st.conn.Write(func(fd uintptr) bool {
		for st.sent < st.span.n {
			off := st.span.off + int64(st.sent)
			n, err := unix.Sendfile(int(fd), st.span.f.fd, &off, st.span.n-st.sent)
			if n > 0 {
				st.sent += n
			}
			switch {
			case err == unix.EAGAIN:
				return false // wait until the socket takes more
			case err == unix.EINTR:
				continue
			case err != nil:
				serr = err
				return true
			case n <= 0:
				serr = io.ErrUnexpectedEOF // the file is shorter than the span: never
				return true
			}
		}
		return true
	})
	if err == nil && serr != nil && st.sent == start && unsupported(serr) {
		st.files.mu.Lock()
		st.files.fail("failed to send a memory file", serr)
		st.files.mu.Unlock()
		return 0, nil, true
	}
	if err == nil {
		err = serr
	}
	return int64(st.sent - start), err, false
}

// writeBody writes the rest of the body to w from the heap.
func (st *sendStream) writeBody(w io.Writer) (int64, error) {
	n, err := w.Write(st.body[st.sent:])
	st.sent += n
	return int64(n), err
}

// Read reads the rest of the body, from the heap.
func (st *sendStream) Read(p []byte) (int, error) {
	if st.sent >= len(st.body) {
		return 0, io.EOF
	}
	n := copy(p, st.body[st.sent:])
	st.sent += n
	return n, nil
}

// Close uncorks the socket if WriteTo did not, and releases the file.
func (st *sendStream) Close() error {
	if !st.closed {
		st.closed = true
		st.uncork()
		st.span.f.release()
	}
	return nil
}

// uncork clears TCP_CORK once, whoever gets there first.
func (st *sendStream) uncork() {
	if st.corked.CompareAndSwap(true, false) {
		st.conn.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 0)
		})
	}
}

// fixedSizeWriter returns the type of the writer fasthttp hands a body
// stream's WriteTo when it writes a body of known size to the connection
// (writeBodyFixedSize). It is unexported, so it is learnt by writing a
// probe's body once, as a request's (a response's would start fasthttp's
// clock goroutine for its Date header). TestSendfileDataTiles fails if a
// fasthttp upgrade stops handing it (no answer would be sent with
// sendfile).
var fixedSizeWriter = sync.OnceValue(func() reflect.Type {
	var found reflect.Type
	var req fasthttp.Request
	req.SetRequestURI("http://probe.invalid/")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetBodyStream(&probeStream{found: &found}, 1)
	req.Write(bufio.NewWriter(io.Discard))
	return found
})

// probeStream records the type of the writer given to its WriteTo.
type probeStream struct{ found *reflect.Type }

func (p *probeStream) Read([]byte) (int, error)  { return 0, io.EOF }
func (p *probeStream) SupportsBodyWriteTo() bool { return true }
func (p *probeStream) WriteTo(w io.Writer) (int64, error) {
	*p.found = reflect.TypeOf(w)
	n, err := w.Write([]byte{0})
	return int64(n), err
}

// bytes returns the bytes held in memory files.
func (fs *bodyFiles) bytes() int64 { return fs.held.Load() }
