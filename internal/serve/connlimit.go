package serve

import (
	"container/list"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// DefaultMaxConnections is MaxConnections when it is 0: room for a large
// company's build farm, at about 20 KB of memory for each idle connection
// (200 MB at the cap), and the file descriptors each listener needs
// (docs/operations.md: LimitNOFILE).
const DefaultMaxConnections = 10000

// A connLimit caps the connections a listener serves at once. Nothing
// else does: net/http and fasthttp keep an idle keep-alive connection
// for IdleTimeout, renewed by each request, so one client holding many
// ran the process out of file descriptors and every other client,
// /healthz included, timed out.
//
// It learns of the connections through the server's ConnState hook (a
// connection counts from StateNew to StateClosed or StateHijacked), not by
// wrapping them: the main listener's are coalescingConns, and data tiles
// go out with sendfile from a *net.TCPConn. Its listener's Accept, once it
// has a connection over the cap, closes the longest-idle keep-alive
// connection to make room, as nginx does when it runs out of
// worker_connections; with none idle it waits until one closes, while the
// new client (and the kernel's backlog) waits. A request arriving on an
// idle connection as it is closed fails as on any keep-alive connection a
// server closes; clients retry it (Go's on a fresh connection).
type connLimit struct {
	max int
	log *slog.Logger

	mu      sync.Mutex
	changed *sync.Cond // broadcast when n drops, a connection turns idle, or closed is set
	n       int        // connections open
	idle    *list.List // idle keep-alive connections, longest-idle first
	idleAt  map[net.Conn]*list.Element
	evicted map[net.Conn]bool // closed by admit, not yet StateClosed
	closed  bool
	warned  time.Time // when the cap was last logged
}

func newConnLimit(max int, log *slog.Logger) *connLimit {
	if max <= 0 {
		max = DefaultMaxConnections
	}
	l := &connLimit{max: max, log: log, idle: list.New(), idleAt: map[net.Conn]*list.Element{}, evicted: map[net.Conn]bool{}}
	l.changed = sync.NewCond(&l.mu)
	return l
}

// httpState is the hook of a net/http server.
func (l *connLimit) httpState(c net.Conn, state http.ConnState) {
	l.track(c, state == http.StateNew, state == http.StateIdle, state == http.StateClosed || state == http.StateHijacked)
}

// fastState is the hook of a fasthttp server.
func (l *connLimit) fastState(c net.Conn, state fasthttp.ConnState) {
	l.track(c, state == fasthttp.StateNew, state == fasthttp.StateIdle, state == fasthttp.StateClosed || state == fasthttp.StateHijacked)
}

func (l *connLimit) track(c net.Conn, opened, idle, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.idleAt[c]; ok {
		l.idle.Remove(e)
		delete(l.idleAt, c)
	}
	switch {
	case opened:
		l.n++
	case idle:
		l.idleAt[c] = l.idle.PushBack(c)
		l.changed.Broadcast()
	case closed:
		l.n--
		delete(l.evicted, c)
		l.changed.Broadcast()
	}
}

// admit returns once the listener may serve one more connection, or false
// if it closed meanwhile. A server calls its hook with StateNew before it
// accepts again, so l.n counts every connection accepted before.
func (l *connLimit) admit() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.n >= l.max && !l.closed {
		l.warn()
		// One connection closing is room enough.
		if e := l.idle.Front(); e != nil && len(l.evicted) == 0 {
			c := l.idle.Remove(e).(net.Conn)
			delete(l.idleAt, c)
			l.evicted[c] = true
			// Not under l.mu: closing a TLS connection writes to it.
			go c.Close()
		}
		l.changed.Wait()
	}
	return !l.closed
}

// warn logs, at most once a minute, that the cap was reached. Call with
// l.mu held.
func (l *connLimit) warn() {
	if time.Since(l.warned) < time.Minute {
		return
	}
	l.warned = time.Now()
	l.log.Warn("listener at -max-connections: closing idle keep-alive connections, or new ones wait", "max_connections", l.max)
}

func (l *connLimit) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.changed.Broadcast()
}

// A limitListener admits each connection it accepts through its connLimit.
type limitListener struct {
	net.Listener
	limit *connLimit
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.limit.admit() {
		c.Close()
		return nil, net.ErrClosed
	}
	return c, nil
}

func (l *limitListener) Close() error {
	l.limit.close()
	return l.Listener.Close()
}
