package serve

import (
	"net"
	"os"
	"testing"
)

func TestPublicURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr  *net.TCPAddr
		https bool
		want  string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, false, "http://127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, true, "https://[::1]:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8081}, false, "http://" + net.JoinHostPort(host, "8081")},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8081}, true, "https://" + net.JoinHostPort(host, "8081")},
	} {
		if got := publicURL(tc.addr, tc.https); got != tc.want {
			t.Errorf("publicURL(%v, %v) = %q, want %q", tc.addr, tc.https, got, tc.want)
		}
	}
}
