package serve

import (
	"net"
	"os"
	"strconv"
)

// publicURL is the URL clients reach a server listening on addr at, for
// the GOSUMDB line sumd serve prints: a listener on every interface
// (":8081", "0.0.0.0:8081", "[::]:8081") is named by the machine's host
// name, since http://[::]:8081 would not work from another machine.
func publicURL(addr net.Addr, https bool) string {
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return scheme + addr.String()
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}
