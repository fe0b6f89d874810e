package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/mod/sumdb/tlog"
)

// sendfileServer serves a fake log of 30 full data tiles (about 36 KB
// each) on fasthttp, with a cache of 400 KiB: the memory files hold 11
// tiles each, so asking for every tile replaces the file twice. Accepted
// connections get a 4 KiB send buffer, so that an answer to a client not
// reading waits in sendfile. It returns the server, its address and each
// tile's expected body.
func sendfileServer(t *testing.T) (*Server, string, [][]byte) {
	s, addr, want, _ := sendfileServerConns(t)
	return s, addr, want
}

// sendfileServerConns is sendfileServer, also returning the server's
// side of the connections it accepts.
func sendfileServerConns(t *testing.T) (*Server, string, [][]byte, *serverConns) {
	t.Helper()
	f, _ := newFakeOps(t, 30<<8)
	s := New(testName, f, Options{Logger: quietLogger, CacheBytes: 400 << 10})
	if s.files == nil {
		t.Fatal("no memory files for a cached server")
	}
	want := make([][]byte, 30)
	for n := range want {
		data, err := s.dataTile(context.Background(), tlog.Tile{H: 8, L: -1, N: int64(n), W: 256})
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < sendfileMin {
			t.Fatalf("data tile %d is %d bytes, under sendfileMin", n, len(data))
		}
		want[n] = data
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			s.ServeFast(context.Background(), c, string(c.Path()), "")
		},
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
	done := make(chan error, 1)
	conns := &serverConns{Listener: ln}
	go func() { done <- fs.Serve(conns) }()
	t.Cleanup(func() {
		fs.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("fasthttp Serve: %v", err)
		}
	})
	return s, ln.Addr().String(), want, conns
}

// serverConns is a listener whose connections get a 4 KiB send buffer,
// and are kept.
type serverConns struct {
	net.Listener
	mu    sync.Mutex
	conns []*net.TCPConn
}

func (l *serverConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
		l.mu.Lock()
		l.conns = append(l.conns, tc)
		l.mu.Unlock()
	}
	return c, err
}

// corked returns how many connections are corked.
func (l *serverConns) corked(t *testing.T) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.conns {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
		if gerr == nil && v != 0 {
			n++
		}
	}
	return n
}

func dataTilePath(n int) string { return "/" + tlog.Tile{H: 8, L: -1, N: int64(n), W: 256}.Path() }

// getTile fetches path with client and checks the answer is want, whole.
func getTile(t *testing.T, client *http.Client, base, path string, want []byte) {
	t.Helper()
	resp, err := client.Get(base + path)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	// A compressed answer's length is the compressed body's.
	if err != nil || resp.StatusCode != 200 || string(body) != string(want) || (!resp.Uncompressed && resp.ContentLength != int64(len(want))) {
		t.Errorf("GET %s: %s, %d bytes of %d (Content-Length %d), %v; want 200 and the tile", path, resp.Status, len(body), len(want), resp.ContentLength, err)
	}
}

// dialSlow connects to addr with a receive buffer of 4 KiB, set before
// the connection's window is: a client that will not read much.
func dialSlow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitSends waits up to d for s to have set n answers to be sent from
// memory files, and reports whether it has.
func waitSends(s *Server, n int64, d time.Duration) bool {
	for deadline := time.Now().Add(d); s.files.sends.Load() < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// waitOpen waits for s's memory files still open to number n.
func waitOpen(t *testing.T, s *Server, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.files.open.Load() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d memory files open, want %d", s.files.open.Load(), n)
		}
	}
}

// TestSendfileDataTiles checks that full data tiles are sent from memory
// files, whole and framed right over kept-alive connections, by clients
// in parallel, while the files are replaced (the cache of 400 KiB evicts
// too); that a replaced file closes once its answers are done, and the
// files hold no more than the cache's size.
func TestSendfileDataTiles(t *testing.T) {
	s, addr, want, conns := sendfileServerConns(t)
	base := "http://" + addr
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 100 {
				n := r.IntN(len(want))
				getTile(t, client, base, dataTilePath(n), want[n])
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Once an answer is received the socket is uncorked: a corked one
	// would hold the next small answer back for 200 ms.
	if n := conns.corked(t); n != 0 {
		t.Errorf("%d connections left corked", n)
	}
	// Most answers are sent from a memory file: not those of a tile whose
	// file was full while the one it replaced still had answers in flight
	// (a file holds 11 of the 30 tiles, and 4 clients ask at random), and
	// every one set up so is sent with sendfile (counted just before the
	// answer leaves: wait for the last).
	sends := s.files.sends.Load()
	for deadline := time.Now().Add(5 * time.Second); s.files.sent.Load() < sends && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if sent := s.files.sent.Load(); sends < 250 || sent != sends {
		t.Errorf("%d of 400 answers set to be sent from memory files, %d sent with sendfile; want most, and all of them", sends, sent)
	}
	if got := s.files.made.Load(); got < 3 {
		t.Errorf("%d memory files made, want 3 or more (each holds 11 tiles, 30 were asked for)", got)
	}
	waitOpen(t, s, 1)
	if got := s.files.bytes(); got <= 0 || got > 400<<10 {
		t.Errorf("memory files hold %d bytes, want 1 to %d", got, 400<<10)
	}
}

// TestSendfileSlowClient checks that an answer waiting on a client that
// does not read keeps its file open while the file is replaced, and is
// sent whole once the client reads.
func TestSendfileSlowClient(t *testing.T) {
	s, addr, want := sendfileServer(t)
	base := "http://" + addr
	client := &http.Client{}
	defer client.CloseIdleConnections()
	getTile(t, client, base, dataTilePath(0), want[0]) // cached, and copied into a file

	slow := dialSlow(t, addr)
	defer slow.Close()
	sends := s.files.sends.Load()
	fmt.Fprintf(slow, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", dataTilePath(0), addr)
	// The answer is sent from tile 0's file, fills the buffers and waits.
	if !waitSends(s, sends+1, 5*time.Second) {
		t.Fatal("the slow client's answer was not sent from a memory file")
	}

	for n := range want { // the file replaced, and the next one full
		getTile(t, client, base, dataTilePath(n), want[n])
	}
	client.CloseIdleConnections()
	if got := s.files.open.Load(); got < 2 {
		t.Errorf("%d memory files open, want the current one and the one the slow answer sends from", got)
	}

	slow.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != string(want[0]) {
		t.Fatalf("slow answer: %d bytes of %d, %v", len(body), len(want[0]), err)
	}
	slow.Close()
	waitOpen(t, s, 1)
}

// TestSendfileRetired checks that once a Server's files are retired (it
// is gone), answers are written from the heap, whole, and every file
// closes.
func TestSendfileRetired(t *testing.T) {
	s, addr, want := sendfileServer(t)
	base := "http://" + addr
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for range 2 {
		getTile(t, client, base, dataTilePath(1), want[1])
	}
	s.files.retire()
	sends := s.files.sends.Load()
	for range 2 {
		getTile(t, client, base, dataTilePath(1), want[1])
	}
	if got := s.files.sends.Load(); got != sends {
		t.Errorf("%d answers sent from retired files", got-sends)
	}
	client.CloseIdleConnections()
	waitOpen(t, s, 0)
	if got := s.files.bytes(); got != 0 {
		t.Errorf("closed memory files still count %d bytes", got)
	}
}

// TestSendfileBounded checks that clients that do not read cannot keep
// more than two memory files open (the current one and the one it
// replaced), however many files' worth of tiles the others ask for
// meanwhile: the answers come from the heap until the old file closes.
func TestSendfileBounded(t *testing.T) {
	s, addr, want := sendfileServer(t)
	base := "http://" + addr
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	for round := range 6 {
		// A client that asks for a tile and reads nothing: its answer
		// waits in sendfile, holding the current file.
		c := dialSlow(t, addr)
		slow = append(slow, c)
		n := (round * 11) % len(want)
		sends := s.files.sends.Load()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", dataTilePath(n), addr)
		// Sent from a file if one holds the tile or can take it; if the
		// heap answers it instead, the round only pins less.
		waitSends(s, sends+1, 200*time.Millisecond)
		for n := range want { // more than a file's worth
			getTile(t, client, base, dataTilePath(n), want[n])
		}
		if open, held := s.files.open.Load(), s.files.bytes(); open > 2 || held > 2*(400<<10) {
			t.Fatalf("round %d: %d memory files open holding %d bytes, want at most 2 and %d", round, open, held, 2*(400<<10))
		}
	}
	for _, c := range slow {
		c.Close()
	}
	slow = nil
	client.CloseIdleConnections()
	waitOpen(t, s, 1)
}

// TestSendfileWrapped checks that an answer set to be sent from a memory
// file is sent whole through a handler that rewrites bodies (fasthttp's
// compression): sendfile would put the raw bytes on the wire past it.
func TestSendfileWrapped(t *testing.T) {
	f, _ := newFakeOps(t, 1<<8)
	s := New(testName, f, Options{Logger: quietLogger})
	want, err := s.dataTile(context.Background(), tlog.Tile{H: 8, L: -1, N: 0, W: 256})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fasthttp.Server{Handler: fasthttp.CompressHandler(func(c *fasthttp.RequestCtx) {
		s.ServeFast(context.Background(), c, string(c.Path()), "")
	})}
	go fs.Serve(ln)
	defer fs.Shutdown()
	client := &http.Client{} // asks for gzip, and decompresses
	defer client.CloseIdleConnections()
	for range 3 {
		getTile(t, client, "http://"+ln.Addr().String(), dataTilePath(0), want)
	}
	if s.files.sends.Load() == 0 || s.files.sent.Load() != 0 {
		t.Errorf("%d answers set to be sent from memory files, %d sent with sendfile; want some, and none", s.files.sends.Load(), s.files.sent.Load())
	}
}

// TestBodyFilesBound checks the bound on the memory files directly, with
// copies of uneven sizes held as answers to clients that do not read hold
// them: never more than two files open (the current one and the one it
// replaced) nor more than twice the size, and a full file replaced again
// once the one before it closed.
func TestBodyFilesBound(t *testing.T) {
	fs := newBodyFiles(100, quietLogger)
	defer fs.retire()
	check := func(step string) {
		t.Helper()
		if open, held := fs.open.Load(), fs.bytes(); open > 2 || held > 200 {
			t.Fatalf("%s: %d files open holding %d bytes, want at most 2 and 200", step, open, held)
		}
	}
	a, _ := fs.reserve(60) // held: its answer waits on a client
	check("60")
	b, _ := fs.reserve(50) // replaces a's file, which stays open
	if a == nil || b == nil || a == b {
		t.Fatalf("reserve(60), reserve(50) = %p, %p: want two files", a, b)
	}
	check("50")
	// A replaced file takes no new answers, or steady requests for its
	// tiles would keep it open, and no file would be replaced again.
	if a.acquire() {
		t.Fatal("a replaced file, still open, was acquired for a new answer")
	}
	if c, _ := fs.reserve(45); c != b {
		t.Fatalf("reserve(45) = %p, want the current file %p", c, b)
	} else {
		c.release()
	}
	for i := range 20 {
		if f, _ := fs.reserve(10); f != nil {
			t.Fatalf("reserve(10) #%d with a full file and the one it replaced open = %p, want none (the heap)", i, f)
		}
		check("10")
	}
	a.release() // a's client went: its file closes
	if fs.open.Load() != 1 {
		t.Fatalf("%d files open after the replaced one's last answer, want 1", fs.open.Load())
	}
	c, _ := fs.reserve(10)
	if c == nil || c == b {
		t.Fatalf("reserve(10) after the replaced file closed = %p, want a new file", c)
	}
	check("new file")
	c.release()
	b.release()
}

// TestSendfileUnsupported checks that where sendfile cannot work at all
// (here: the file a directory, which sendfile refuses with EINVAL) nothing is
// sent that way, memory files are given up for good, and the body is
// written whole from the heap instead.
func TestSendfileUnsupported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := syscall.Open(t.TempDir(), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fs := newBodyFiles(1<<20, quietLogger)
	f := &bodyFile{fd: dir, parent: fs} // released below, which closes it
	f.refs.Store(2)
	fs.open.Add(1)
	body := []byte("not sent by sendfile\n")
	st := &sendStream{span: &fileSpan{f: f, n: len(body)}, body: body, conn: rc, files: fs}
	// fasthttp writes the stream as it writes an answer's body: through
	// its fixed-size writer, to the connection's buffer.
	var req fasthttp.Request
	req.SetRequestURI("http://sumd.test/")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetBodyStream(st, len(body))
	bw := bufio.NewWriter(conn)
	if err := req.Write(bw); err != nil || bw.Flush() != nil {
		t.Fatalf("writing a body sendfile refuses: %v", err)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := http.ReadRequest(bufio.NewReader(client))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(got.Body); err != nil || string(b) != string(body) {
		t.Fatalf("body when sendfile refuses = %q, %v; want %q, written from the heap", b, err, body)
	}
	if st.files.sent.Load() != 0 {
		t.Errorf("%d answers counted as sent with sendfile, want 0", st.files.sent.Load())
	}
	if got, _ := fs.reserve(10); got != nil || !fs.broken {
		t.Errorf("after sendfile failed with EINVAL: reserve = %p, broken %v; want none, true", got, fs.broken)
	}
	st.Close()
	f.release()
	if fs.open.Load() != 0 {
		t.Errorf("%d files open, want 0", fs.open.Load())
	}
}
