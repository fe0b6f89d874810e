package serve

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMaxConnections: each listener serves at most MaxConnections
// connections at once. A new client beyond it takes the place of the
// longest-idle keep-alive connection, which is closed; with none idle it
// waits (in the kernel's backlog, for a client) until one closes. Before,
// nothing capped them: one client holding keep-alive connections ran
// the process out of file descriptors, and /healthz timed out.
func TestMaxConnections(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	cfg.MaxConnections = 2
	url := serveTest(t, cfg, urls)
	for name, u := range map[string]string{"main": url, "read": readURLOf()} {
		t.Run(name, func(t *testing.T) {
			addr := strings.TrimPrefix(u, "http://")
			a, b := idleConn(t, addr), idleConn(t, addr)
			c := idleConn(t, addr) // takes a's or b's place
			// Which one is TestConnLimitLongestIdle's: the server marks a
			// connection idle only after its answer has gone out.
			closedA, closedB := closedWithin(a.c, 2*time.Second), closedWithin(b.c, 100*time.Millisecond)
			if closedA == closedB {
				t.Errorf("idle connections closed for a third client: first %v, second %v; want one of them", closedA, closedB)
			}
			if closedA {
				a, b = b, a
			}

			// Two connections that sent nothing yet take a's and c's
			// places; a third must wait for one of them to close.
			d, e := dial(t, addr), dial(t, addr)
			for _, x := range []*bufConn{a, c} {
				if !closedWithin(x.c, 2*time.Second) {
					t.Error("an idle connection was not closed for a new client")
				}
			}
			f := dial(t, addr)
			io.WriteString(f.c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			f.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := f.r.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("a client over the limit with none idle was answered (%v), want it to wait", err)
			}
			d.c.Close()
			f.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(f.r, nil)
			if err != nil {
				t.Fatalf("the waiting client was not answered once a connection closed: %v", err)
			}
			resp.Body.Close()
			e.c.Close()
			f.c.Close()
		})
	}
}

type bufConn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *bufConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &bufConn{c, bufio.NewReader(c)}
}

// idleConn returns a keep-alive connection to addr that has been answered
// once.
func idleConn(t *testing.T, addr string) *bufConn {
	t.Helper()
	b := dial(t, addr)
	b.c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(b.c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(b.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	b.c.SetDeadline(time.Time{})
	return b
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestConnLimitLongestIdle: at the cap, the connection idle the longest
// is closed, one for each connection admitted.
func TestConnLimitLongestIdle(t *testing.T) {
	l := newConnLimit(3, slog.New(slog.DiscardHandler))
	var conns []net.Conn
	for range 3 {
		c, peer := net.Pipe()
		defer peer.Close()
		conns = append(conns, c)
		l.httpState(c, http.StateNew)
	}
	for _, i := range []int{1, 0, 2} {
		l.httpState(conns[i], http.StateActive)
		l.httpState(conns[i], http.StateIdle)
	}
	l.httpState(conns[1], http.StateActive) // busy again

	admitted := make(chan bool)
	go func() { admitted <- l.admit() }()
	if !closedWithin(conns[0], 2*time.Second) {
		t.Fatal("the longest-idle connection was not closed")
	}
	select {
	case <-admitted:
		t.Fatal("admitted before the closed connection was gone")
	case <-time.After(50 * time.Millisecond):
	}
	l.httpState(conns[0], http.StateClosed)
	if !<-admitted {
		t.Fatal("admit = false")
	}
	if closedWithin(conns[2], 50*time.Millisecond) {
		t.Error("a second idle connection was closed for one admitted")
	}
}

// TestIdleTimeout: both listeners close a keep-alive connection idleTimeout
// after its last answer, which is above load balancers' 60 s (they, not
// sumd, close an idle connection, so they never send a request on one
// sumd closes) and no more than nginx's 75 s. It was 120 s: twice the
// memory and descriptors held by idle clients.
func TestIdleTimeout(t *testing.T) {
	if idleTimeout <= 60*time.Second || idleTimeout > 75*time.Second {
		t.Errorf("idleTimeout = %v, want above 60s and at most 75s", idleTimeout)
	}
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 300 * time.Millisecond
	cfg, urls, readURLOf := readConfig(t)
	url := serveTest(t, cfg, urls)
	for name, u := range map[string]string{"main": url, "read": readURLOf()} {
		c := idleConn(t, strings.TrimPrefix(u, "http://"))
		if !closedWithin(c.c, 5*time.Second) {
			t.Errorf("%s listener: an idle connection was still open after 5 s (idle timeout %v)", name, idleTimeout)
		}
	}
}
