package serve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// coalesceServer serves /N with N bytes of a pattern, with a
// Content-Length as sumd's answers have, through a coalescingListener. It
// returns the address and a function giving the server side of the one
// connection the test makes.
func coalesceServer(t *testing.T) (string, func() *coalescingConn) {
	return coalesceServerWith(t, nil, nil)
}

// coalesceServerWith is coalesceServer whose /wait/NAME requests answer
// "NAME" once wait(NAME) returns, and whose http.Server edit may change
// before it serves.
func coalesceServerWith(t *testing.T, wait func(name string), edit func(*http.Server)) (string, func() *coalescingConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conn *coalescingConn
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if name, ok := strings.CutPrefix(r.URL.Path, "/wait/"); ok && wait != nil {
				wait(name)
				io.WriteString(w, name)
				return
			}
			if r.Method == http.MethodPost { // answers the body's length
				body, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%d", len(body))
				return
			}
			n, err := strconv.Atoi(r.URL.Path[1:])
			if err != nil {
				http.Error(w, "bad size", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(pattern(n))
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				mu.Lock()
				conn = c.(*coalescingConn)
				mu.Unlock()
			}
		},
		WriteTimeout: time.Minute,
	}
	if edit != nil {
		edit(srv)
	}
	go srv.Serve(coalescingListener{Listener: ln})
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), func() *coalescingConn {
		mu.Lock()
		defer mu.Unlock()
		return conn
	}
}

// dialTest connects to addr for at most 10 seconds of the test, and closes
// the connection when the test ends.
func dialTest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func (c *coalescingConn) writeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// readAnswers reads n responses from r and checks their bodies.
func readAnswers(t *testing.T, r *bufio.Reader, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("reading the answer of /%d: %v", n, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, pattern(n)) {
			t.Fatalf("/%d: status %d, %d bytes, err %v; want 200 with the pattern", n, resp.StatusCode, len(body), err)
		}
	}
}

// TestCoalescingOneWritePerAnswer checks that answers, small or large,
// leave in one system call each, byte for byte, and that a small one held
// back is sent while the client waits (or the test would hang).
//
// net/http's background read (the one that notices a client going away)
// may start while a handler writes, and sends what is held when it does:
// an answer then takes two writes, as it would without coalescing. So the
// test allows two such answers in all; without coalescing, the seven of
// 4000 bytes or more would take two writes each.
func TestCoalescingOneWritePerAnswer(t *testing.T) {
	addr, serverConn := coalesceServer(t)
	c := dialTest(t, addr)
	r := bufio.NewReader(c)
	// Sizes around net/http's 4 KiB buffer and coalesceBytes, a full hash
	// tile (8 KiB), a data tile and more.
	sizes := []int{0, 1, 100, 3900, 4000, 4096, 4200, 8192, 41410, 200000, 5}
	last := 0
	for _, n := range sizes {
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
		readAnswers(t, r, n)
		got := serverConn().writeCount()
		if got-last > 2 {
			t.Errorf("the answer of %d bytes took %d writes; want one (two at most)", n, got-last)
		}
		last = got
	}
	if last > len(sizes)+2 {
		t.Errorf("%d answers took %d writes; want one each (two more at most)", len(sizes), last)
	}
}

// TestCoalescingPipelined checks that answers to requests sent together
// arrive complete and in order.
func TestCoalescingPipelined(t *testing.T) {
	addr, _ := coalesceServer(t)
	c := dialTest(t, addr)
	sizes := []int{10, 8192, 20, 3000, 50000, 7}
	var req bytes.Buffer
	for _, n := range sizes {
		fmt.Fprintf(&req, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
	}
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	readAnswers(t, bufio.NewReader(c), sizes...)
}

// TestCoalescingClose checks that what is held is sent before the
// connection closes: the answer to a "Connection: close" request, and the
// errors net/http writes to the connection itself before it closes it (400
// for a request without Host) or its writing side (431 for headers over
// MaxHeaderBytes).
func TestCoalescingClose(t *testing.T) {
	addr, _ := coalesceServerWith(t, nil, func(srv *http.Server) { srv.MaxHeaderBytes = 1 << 10 })
	dial := func() (net.Conn, *bufio.Reader) {
		c := dialTest(t, addr)
		return c, bufio.NewReader(c)
	}
	wantEOF := func(what string, r *bufio.Reader) {
		t.Helper()
		if _, err := io.ReadAll(r); err != nil {
			t.Errorf("%s: after the answer, %v; want the connection closed (EOF)", what, err)
		}
	}
	for _, n := range []int{12, 5000} {
		c, r := dial()
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", n)
		readAnswers(t, r, n)
		wantEOF(fmt.Sprintf("/%d", n), r)
		c.Close()
	}
	for _, tt := range []struct {
		name, req string
		status    int
	}{
		{"no Host", "GET /1 HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"headers too large", "GET /1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("x", 64<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		c, r := dial()
		go io.WriteString(c, tt.req) // the server may stop reading before the end
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%s: %v; want a %d", tt.name, err, tt.status)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %s; want %d", tt.name, resp.Status, tt.status)
		}
		c.Close()
	}
}

// TestCoalescingLateAnswer checks that an answer whose sending fails after
// the handler ran past the write deadline ends the connection, as it does
// without coalescing: the held answer fails when net/http clears the
// deadline, which it ignores, and the next pipelined request must not be
// answered in its place.
func TestCoalescingLateAnswer(t *testing.T) {
	addr, _ := coalesceServerWith(t, func(string) { time.Sleep(400 * time.Millisecond) },
		func(srv *http.Server) { srv.WriteTimeout = 200 * time.Millisecond })
	c := dialTest(t, addr)
	fmt.Fprintf(c, "GET /wait/slow HTTP/1.1\r\nHost: x\r\n\r\nGET /5 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("an answer %q to a request answered past its write deadline; want the connection closed", body)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%v: the connection stayed open; want it closed", err)
	}
}

// TestCoalescingContinue checks that a "100 Continue", which net/http
// writes when the handler starts reading the body, reaches a client that
// waits for it before it sends the body.
func TestCoalescingContinue(t *testing.T) {
	addr, _ := coalesceServer(t)
	c := dialTest(t, addr)
	fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("waiting for 100 Continue: %q, %v", line, err)
	}
	if blank, err := r.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	fmt.Fprintf(c, "hello")
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "5" {
		t.Errorf("answer %q; want the body's length, 5", body)
	}
}

// TestCoalescingPipelinedSlow checks that an answer is sent when it is
// done, not held while the next pipelined request is handled. net/http
// reads nothing between the two when the next request is already buffered
// and its background read took a byte of the one after.
func TestCoalescingPipelinedSlow(t *testing.T) {
	gates := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	handling := make(chan string, 2)
	addr, _ := coalesceServerWith(t, func(name string) {
		handling <- name
		select {
		case <-gates[name]:
		case <-time.After(10 * time.Second):
		}
	}, nil)
	c := dialTest(t, addr)
	fmt.Fprintf(c, "GET /wait/a HTTP/1.1\r\nHost: x\r\n\r\nGET /wait/b HTTP/1.1\r\nHost: x\r\n\r\n")
	// net/http starts /wait/a's background read before its handler, with
	// /wait/b already buffered.
	if name := <-handling; name != "a" {
		t.Fatalf("handling /wait/%s first", name)
	}
	fmt.Fprintf(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n") // its first byte goes to /wait/a's background read
	// Nothing outside net/http shows the byte taken: a pause gives the
	// read its chance. Were it too short, the answers would still come
	// in order (the test would only prove less), so it cannot fail the test.
	time.Sleep(50 * time.Millisecond)
	close(gates["a"])
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"a", "b"} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("reading the answer of /wait/%s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("answer %q; want %q", body, want)
		}
		if want == "a" {
			close(gates["b"]) // /wait/b is handled until /wait/a's answer is in
		}
	}
	readAnswers(t, r, 1)
}

// TestCoalescingIdleHoldsNothing: a connection between answers keeps no
// buffer. It kept the one it held an answer's tail in, up to 4 KiB, for as
// long as it stayed open: about 3 KB more for each idle keep-alive
// connection than net/http alone, measured after answers of 4 KB.
func TestCoalescingIdleHoldsNothing(t *testing.T) {
	addr, serverConn := coalesceServer(t)
	c := dialTest(t, addr)
	r := bufio.NewReader(c)
	for _, n := range []int{4000, 100, 8192} {
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
		readAnswers(t, r, n)
		// The buffer goes back just after the write that sent the answer.
		held := -1
		for deadline := time.Now().Add(2 * time.Second); held != 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			sc := serverConn()
			sc.mu.Lock()
			held = cap(sc.held)
			sc.mu.Unlock()
		}
		if held != 0 {
			t.Errorf("after an answer of %d bytes, the idle connection keeps a buffer of %d bytes", n, held)
		}
	}
}
