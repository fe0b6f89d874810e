package testnet

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRefusingAddr: the port RefusingAddr gives refuses connections, and no
// listener can take it while the test runs, as one could the port of a
// closed server (cmd/sumd's TestStatusUnreachable failed when one did).
func TestRefusingAddr(t *testing.T) {
	addr := RefusingAddr(t)
	if c, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial %s = %v, want connection refused", addr, err)
		if c != nil {
			c.Close()
		}
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("Listen %s succeeded: another server could answer there", addr)
	}
}

// TestFreeAddrHeld: a server can listen on FreeAddr's address, again after
// it stopped, while a socket that does not share it cannot bind it between
// two runs (one could bind the port of a closed listener).
func TestFreeAddrHeld(t *testing.T) {
	addr := FreeAddr(t)
	for range 2 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("a server cannot listen on %s: %v", addr, err)
		}
		ln.Close()
	}
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err == nil {
		t.Errorf("another socket bound %s between two runs", addr)
	}
}
