package serve

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// coalesceBytes is how much a connection holds back, at most, before it
// writes: net/http's own buffer is 4 KiB, so a response's headers and the
// start of its body arrive in one piece and the rest in another.
const coalesceBytes = 4 << 10

// A coalescingListener hands net/http connections that send each HTTP/1.1
// response with one write system call instead of two or three.
//
// net/http writes a response through a 4 KiB buffer: the headers and the
// first part of the body are written when the buffer fills, the rest of a
// large body directly after it, and the tail of a small one when the
// handler returns. On loopback or a fast LAN every write wakes the reader,
// and a full tile (8 KiB of hashes, or a data tile) costs two writes and
// two wakeups where nginx, with tcp_nopush, costs one. A coalescingConn
// holds back writes of up to coalesceBytes in all and sends what it holds
// together with the next larger write (one writev) or before it next reads
// or closes. net/http reads after every response (it waits for the next
// request, or its background read is already waiting), so nothing a
// response wrote stays held once the response is done.
//
// What it must not be used for: a protocol that writes and then waits
// without reading, such as HTTP/2 (its frame reader is always in Read) or a
// handler that streams with http.Flusher; sumd has neither on plain
// listeners, and TLS listeners are not wrapped (HTTP/2 is negotiated there).
type coalescingListener struct {
	net.Listener
	timeout time.Duration // write deadline for a held write sent from Read or Close, if none is set
}

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &coalescingConn{tc: tc, timeout: l.timeout}, nil
}

// A coalescingConn is a TCP connection whose small writes are held back
// until the next write, read or close (see coalescingListener). It has
// exactly net.Conn's methods and CloseWrite: in particular no ReadFrom, so
// that nothing can write past what it holds.
type coalescingConn struct {
	tc      *net.TCPConn
	timeout time.Duration

	deadline atomic.Int64 // the write deadline net/http set, in Unix nanoseconds; 0 if none

	mu     sync.Mutex // held while writing, so that writes stay in order
	held   []byte
	writes int // system calls that wrote, for tests; guarded by mu
}

func (c *coalescingConn) conn() *net.TCPConn { return c.tc }

// Write holds p back when what is held stays within coalesceBytes, and
// otherwise writes what is held and p with one writev.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held)+len(p) <= coalesceBytes {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	c.writes++
	if len(c.held) == 0 {
		return c.conn().Write(p)
	}
	held := len(c.held)
	bufs := net.Buffers{c.held, p}
	n, err := bufs.WriteTo(c.conn())
	c.held = c.held[:0]
	wrote := int(n) - held
	if wrote < 0 {
		wrote = 0
	}
	return wrote, err
}

// flush writes what is held. If net/http set no write deadline, the write
// gets one of c.timeout, so that a client that stopped reading cannot hold
// the connection for ever. Call with c.mu held.
func (c *coalescingConn) flush() error {
	if len(c.held) == 0 {
		return nil
	}
	if c.deadline.Load() == 0 && c.timeout > 0 {
		c.conn().SetWriteDeadline(time.Now().Add(c.timeout))
		defer c.conn().SetWriteDeadline(time.Time{})
	}
	c.writes++
	_, err := c.conn().Write(c.held)
	c.held = c.held[:0]
	return err
}

// Read sends what is held, then reads: whoever reads next is waiting for
// the other side, which may be waiting for what is held.
func (c *coalescingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flush()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.conn().Read(p)
}

// Close sends what is held, unless a write is in progress: closing must
// not wait for a client that stopped reading (net/http's Close cuts
// connections that way), so it then only closes, which ends the write.
func (c *coalescingConn) Close() error {
	if c.mu.TryLock() {
		c.flush()
		c.mu.Unlock()
	}
	return c.conn().Close()
}

// CloseWrite sends what is held and shuts down the writing side (net/http
// uses it to close a connection gracefully after an error).
func (c *coalescingConn) CloseWrite() error {
	c.mu.Lock()
	err := c.flush()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.conn().CloseWrite()
}

func (c *coalescingConn) LocalAddr() net.Addr  { return c.conn().LocalAddr() }
func (c *coalescingConn) RemoteAddr() net.Addr { return c.conn().RemoteAddr() }

func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.setDeadline(t)
	return c.conn().SetDeadline(t)
}

func (c *coalescingConn) SetReadDeadline(t time.Time) error { return c.conn().SetReadDeadline(t) }

func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(t)
	return c.conn().SetWriteDeadline(t)
}

func (c *coalescingConn) setDeadline(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(max(t.UnixNano(), 1))
	}
}
