package serve

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMainListenerSlowBody: an anonymous client trickling a request body
// on the main listener is cut after readTimeout, not kept for the request
// timeout (a minute, four with -upstream): each such client would
// otherwise hold a connection, a goroutine and its buffers that long.
func TestMainListenerSlowBody(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 300 * time.Millisecond
	cfg, urls, _ := testConfig(t) // RequestTimeout: a minute
	url := serveTest(t, cfg, urls)

	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /admin/add HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() { // a byte every 50 ms, for longer than the test waits
		for range 100 {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Second)) // ten times readTimeout
	_, err = io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a trickled body still held the connection after 3 s (read timeout %v)", readTimeout)
	}
}

// TestErrorBeforeBody: an error answer to a request whose body was not
// read goes out at once, and the connection is closed after it. net/http
// reads up to 256 KiB of an unread body before it answers, to keep the
// connection: a client declaring a body it never sent got its 401 only
// when the read timeout (10 s) cut it.
func TestErrorBeforeBody(t *testing.T) {
	cfg, urls, _, _ := accessConfig(t)
	url := serveTest(t, cfg, urls)
	for _, req := range []string{
		"POST /admin/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
		"POST /admin/add HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PUT /latest HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cmVhZGVyOnJlYWRlcg==\r\nContent-Length: 100000\r\n\r\n",
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("%.30q: no answer within 2 s (read timeout %v): %v", req, readTimeout, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || !resp.Close {
			t.Errorf("%.30q: %s, close %v; want an error and the connection closed", req, resp.Status, resp.Close)
		}
	}
}
