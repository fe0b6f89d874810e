package serve

import (
	"errors"
	"io"
	"net"
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
