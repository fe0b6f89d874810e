// Package testnet gives tests loopback ports that no other process can
// take while the test runs.
//
// The port of a closed listener or httptest server is free again at once,
// and another test binary running beside this one (go test runs packages in
// parallel), or a server the test starts, may take it and answer, failing
// the test with another error than the one it waits for. A socket bound to
// the port that never listens holds it: the kernel hands a bound port to no
// other bind of port 0 and to no outgoing connection.
package testnet

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// RefusingAddr returns a loopback host:port that refuses every connection
// until the test ends.
func RefusingAddr(t testing.TB) string {
	t.Helper()
	return hold(t, false)
}

// FreeAddr returns a loopback host:port nothing listens on, for a server
// that must keep its address across restarts. The port is held until the
// test ends with SO_REUSEADDR, which Go's listeners set too, so a server
// can listen on it (again and again) while no socket that does not share
// it can bind it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return hold(t, true)
}

func hold(t testing.TB, reuse bool) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("testnet: socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			t.Fatalf("testnet: SO_REUSEADDR: %v", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("testnet: bind: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("testnet: getsockname: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}
