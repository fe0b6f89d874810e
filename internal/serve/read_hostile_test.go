package serve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes raw to a new connection to addr and reads the
// answers until the server closes it or 5 s pass.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

// TestReadListenerHostile sends the read listener what anonymous clients
// may send: every malformed or oversized request gets a one-line
// text/plain error that echoes nothing of the request and changes
// nothing; pipelined requests are answered in order; a request that says
// its body two ways (request smuggling) gets one answer and the
// connection closed; a client that sends
// its headers too slowly is cut.
func TestReadListenerHostile(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = time.Second
	cfg, urls, readURLOf := readConfig(t)
	url := serveTest(t, cfg, urls)
	addr := strings.TrimPrefix(readURLOf(), "http://")
	head := ask(t, url, "/latest", "")

	for _, c := range []struct {
		name, raw, want string
	}{
		{"headers over 16 KiB", "GET /latest HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"body over 1 KiB", "GET /latest HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n" + strings.Repeat("b", 4096), "HTTP/1.1 413 "},
		{"garbage request line", "\x16\x03\x01\x02\x00 hello\r\n\r\n", "HTTP/1.1 400 "},
		{"no HTTP version", "GET /latest\r\n\r\n", "HTTP/1.1 400 "},
		{"transfer-encoding identity", "GET /latest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 501 "},
		{"transfer-encoding identity, then a request", "GET /latest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /latest HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 501 "},
		{"two content-lengths", "GET /latest HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 400 "},
	} {
		got := rawExchange(t, addr, c.raw)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: answer %.300q, want %q…", c.name, got, c.want)
			continue
		}
		if !strings.Contains(got, "Content-Type: text/plain; charset=utf-8\r\n") || strings.Contains(got, "aaaa") || strings.Contains(got, "hello") {
			t.Errorf("%s: answer %.300q: want text/plain echoing nothing", c.name, got)
		}
		if strings.Contains(got, "HTTP/1.1 200") {
			t.Errorf("%s: a request after the refused one was answered: %.300q", c.name, got)
		}
	}

	// A transfer coding other than chunked gets the main listener's
	// (net/http's) 501, as RFC 9112 §6.1 says.
	te := "GET /latest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
	mainTE, readTE := rawExchange(t, strings.TrimPrefix(url, "http://"), te), rawExchange(t, addr, te)
	if !strings.HasPrefix(mainTE, "HTTP/1.1 501 ") || !strings.HasPrefix(readTE, "HTTP/1.1 501 ") {
		t.Errorf("Transfer-Encoding: gzip: main listener %.100q, read listener %.100q, want 501 from both", mainTE, readTE)
	}

	// A body said two ways, Content-Length and chunked (RFC 9112 §6.3):
	// fasthttp reads it as chunked, answers, and closes the connection, so
	// what a proxy in front might take for a second request is never
	// answered.
	got := rawExchange(t, addr, "POST /latest HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /latest HTTP/1.1\r\nHost: x\r\n\r\n")
	if strings.Count(got, "HTTP/1.1 ") != 1 || !strings.Contains(got, "Connection: close\r\n") || strings.Contains(got, " 200 ") {
		t.Errorf("content-length and chunked: %.400q, want one refusal and the connection closed", got)
	}

	// Pipelined: three answers, in order.
	got = rawExchange(t, addr, "GET /latest HTTP/1.1\r\nHost: x\r\n\r\nGET /tile/8/0/000.p/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	r := bufio.NewReader(strings.NewReader(got))
	for i, want := range []int{200, 200, 404} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("pipelined answer %d: %v in %.300q", i, err, got)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want {
			t.Errorf("pipelined answer %d: %d, want %d", i, resp.StatusCode, want)
		}
	}

	// Slow headers: cut within the read timeout (10 s, 1 s here).
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /latest HTTP/1.1\r\n")
	start := time.Now()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	out, _ := io.ReadAll(c) // ends when the server closes the connection
	if d := time.Since(start); d > 5*time.Second || strings.Contains(string(out), " 200 ") {
		t.Errorf("a client that never finished its headers was answered %.100q after %s, want cut within the 1 s read timeout", out, d)
	}

	if got := ask(t, url, "/latest", ""); got != head {
		t.Errorf("the log changed: /latest %q, was %q", got, head)
	}
}

// TestOddTargets: CONNECT and the request target * get sumd's 400,
// text/plain, on both listeners. The main listener's ServeMux answered
// CONNECT "404 page not found" and net/http `OPTIONS *` an empty 200; the
// read listener redirected both, CONNECT to / and `OPTIONS *` to /%2A.
func TestOddTargets(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	url := serveTest(t, cfg, urls)
	for name, u := range map[string]string{"main": url, "read": readURLOf()} {
		addr := strings.TrimPrefix(u, "http://")
		for _, req := range []string{
			"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		} {
			got := rawExchange(t, addr, req+"GET /latest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, "Content-Type: text/plain; charset=utf-8\r\n") || !strings.Contains(got, oddTargetText) {
				t.Errorf("%s listener: %.30q: %.300q, want sumd's 400", name, req, got)
			}
		}
	}
}

// TestOddTargetsMisdirected: with -allowed-hosts, CONNECT and `OPTIONS *`
// to a host it does not name get the same answer on both listeners (the
// target's 400, checked first): the main listener checked the target
// first, the read listener the host.
func TestOddTargetsMisdirected(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	cfg.Access.AllowedHosts = []string{"sumd.corp.example"}
	url := serveTest(t, cfg, urls)
	for name, u := range map[string]string{"main": url, "read": readURLOf()} {
		addr := strings.TrimPrefix(u, "http://")
		for _, req := range []string{
			"CONNECT rebound.example:443 HTTP/1.1\r\nHost: rebound.example:443\r\nConnection: close\r\n\r\n",
			"OPTIONS * HTTP/1.1\r\nHost: rebound.example\r\nConnection: close\r\n\r\n",
		} {
			got := rawExchange(t, addr, req)
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, oddTargetText) {
				t.Errorf("%s listener: %.40q: %.300q, want the odd target's 400", name, req, got)
			}
		}
	}
}

// TestHeaderLimit: both listeners refuse the same oversized headers with
// 431. net/http adds 4 KiB to MaxHeaderBytes, so the main listener took
// 19,000 bytes of headers where the read listener's 16 KiB did not.
func TestHeaderLimit(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	url := serveTest(t, cfg, urls)
	for name, u := range map[string]string{"main": url, "read": readURLOf()} {
		addr := strings.TrimPrefix(u, "http://")
		for what, headers := range map[string]string{
			"a value of 19,000 bytes": "X-Big: " + strings.Repeat("a", 19000) + "\r\n",
			"2100 small headers":      strings.Repeat("X-A: b\r\n", 2100),
		} {
			got := rawExchange(t, addr, "GET /latest HTTP/1.1\r\nHost: x\r\n"+headers+"\r\n")
			if !strings.HasPrefix(got, "HTTP/1.1 431 ") {
				t.Errorf("%s listener, %s: %.100q, want 431", name, what, got)
			}
		}
		// Under the limit: answered.
		if got := rawExchange(t, addr, "GET /latest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "+strings.Repeat("a", 15000)+"\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Errorf("%s listener, 15,000 bytes of headers: %.100q, want 200", name, got)
		}
	}
}

// TestMalformedTargetFirst: a request target net/http refuses gets its
// 400 on both listeners before the host or a browser's word about the
// sending site is looked at, and the connection closed, as net/http
// refuses it before any handler runs. The read listener checked the
// host and the site first (421, 403) and kept the connection.
func TestMalformedTargetFirst(t *testing.T) {
	cfg, urls, readURLOf := readConfig(t)
	cfg.Access.AllowedHosts = []string{"sumd.corp.example"}
	url := serveTest(t, cfg, urls)
	next := "GET /latest HTTP/1.1\r\nHost: sumd.corp.example\r\nConnection: close\r\n\r\n"
	for name, u := range map[string]string{"main": url, "read": readURLOf()} {
		addr := strings.TrimPrefix(u, "http://")
		for what, headers := range map[string]string{
			"another host":        "Host: rebound.example\r\n",
			"another site's page": "Host: sumd.corp.example\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: cors\r\n",
		} {
			got := rawExchange(t, addr, "GET /%zz HTTP/1.1\r\n"+headers+"\r\n"+next)
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || strings.Count(got, "HTTP/1.1 ") != 1 {
				t.Errorf("%s listener, /%%zz from %s: %.300q, want one 400 and the connection closed", name, what, got)
			}
		}
	}
}
