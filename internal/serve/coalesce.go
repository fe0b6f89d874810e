package serve

import (
	"net"
	"sync"
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
// together with the next larger write (one writev), or when net/http
// clears the write deadline, which it does after every response, or
// before it next reads or closes. So what a response wrote is sent when
// the response is done, within net/http's own write deadline. Answers
// net/http writes to the connection itself (400, 431) go out when it
// closes the connection or its writing side.
//
// A held write that fails where net/http cannot see it (when the deadline
// is cleared, whose error it ignores) closes the connection: net/http
// believes the answer sent, and must not read and answer the next request
// on a connection that lost one.
//
// What it must not be used for: a protocol that writes and then waits
// without reading, such as HTTP/2 (its frame reader is always in Read) or a
// handler that streams with http.Flusher; sumd has neither on plain
// listeners, and TLS listeners are not wrapped (HTTP/2 is negotiated there).
type coalescingListener struct{ net.Listener }

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &coalescingConn{tc: tc}, nil
}

// A coalescingConn is a TCP connection whose small writes are held back
// until the next write, the clearing of its write deadline, a read or a
// close (see coalescingListener). It has exactly net.Conn's methods and
// CloseWrite: in particular no ReadFrom, so that nothing can write past
// what it holds.
type coalescingConn struct {
	tc *net.TCPConn

	mu     sync.Mutex // held while writing, so that writes stay in order
	held   []byte     // from heldBuffers while it holds bytes, else nil
	writes int        // system calls that wrote, for tests; guarded by mu
}

// heldBuffers are the coalescingConns' buffers: a connection takes one
// when it holds back a write and returns it when it sends what it held,
// after every answer, so that an idle keep-alive connection keeps none
// (3 KB each, measured, after an answer of 4 KB).
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, coalesceBytes); return &b }}

// hold appends p to what c holds. Call with c.mu held.
func (c *coalescingConn) hold(p []byte) {
	if c.held == nil {
		c.held = *heldBuffers.Get().(*[]byte)
	}
	c.held = append(c.held, p...)
}

// release returns c's buffer, once what it held has been written. Call
// with c.mu held.
func (c *coalescingConn) release() {
	b := c.held[:0]
	c.held = nil
	heldBuffers.Put(&b)
}

// Write holds p back when what is held stays within coalesceBytes, and
// otherwise writes what is held and p with one writev.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held)+len(p) <= coalesceBytes {
		c.hold(p)
		return len(p), nil
	}
	c.writes++
	if len(c.held) == 0 {
		return c.tc.Write(p)
	}
	held := len(c.held)
	bufs := net.Buffers{c.held, p}
	n, err := bufs.WriteTo(c.tc)
	c.release()
	return max(int(n)-held, 0), err
}

// flush writes what is held, under whatever write deadline is set. Call
// with c.mu held.
func (c *coalescingConn) flush() error {
	if len(c.held) == 0 {
		return nil
	}
	c.writes++
	_, err := c.tc.Write(c.held)
	c.release()
	return err
}

// flushed runs flush under c.mu.
func (c *coalescingConn) flushed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flush()
}

// Read sends what is held, then reads: whoever reads next may be waiting
// for the other side, which may be waiting for what is held.
func (c *coalescingConn) Read(p []byte) (int, error) {
	if err := c.flushed(); err != nil {
		return 0, err
	}
	return c.tc.Read(p)
}

// Close sends what is held, unless a write is in progress: closing must
// not wait for a client that stopped reading (net/http's Close cuts
// connections that way), so it then only closes, which ends the write.
func (c *coalescingConn) Close() error {
	if c.mu.TryLock() {
		c.flush()
		c.mu.Unlock()
	}
	return c.tc.Close()
}

// CloseWrite sends what is held and shuts down the writing side (net/http
// uses it to close a connection gracefully after an error).
func (c *coalescingConn) CloseWrite() error {
	if err := c.flushed(); err != nil {
		return err
	}
	return c.tc.CloseWrite()
}

func (c *coalescingConn) LocalAddr() net.Addr  { return c.tc.LocalAddr() }
func (c *coalescingConn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

func (c *coalescingConn) SetReadDeadline(t time.Time) error { return c.tc.SetReadDeadline(t) }

// SetWriteDeadline sends what is held before it clears the deadline:
// net/http clears it when a response is done, and the deadline still set
// is the one the response was written under.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	if err := c.flushBeforeClearing(t); err != nil {
		return err
	}
	return c.tc.SetWriteDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (c *coalescingConn) SetDeadline(t time.Time) error {
	if err := c.flushBeforeClearing(t); err != nil {
		return err
	}
	return c.tc.SetDeadline(t)
}

// flushBeforeClearing sends what is held if t clears the deadline. net/http
// ignores the error of clearing it, so a failed send closes the connection
// (see coalescingListener).
func (c *coalescingConn) flushBeforeClearing(t time.Time) error {
	if !t.IsZero() {
		return nil
	}
	if err := c.flushed(); err != nil {
		c.tc.Close()
		return err
	}
	return nil
}
