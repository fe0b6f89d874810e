package pgstore

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A partitionProxy forwards connections on a unix socket of its own to the
// server's. Its partition closes the client side of every connection and
// leaves the server side open and silent, as a network partition does:
// the backend sees no end of its connection. Cancel requests are dropped,
// as a partition that has not healed would.
type partitionProxy struct {
	mu      sync.Mutex
	clients []net.Conn
}

// startProxy proxies the server whose socket is in serverDir and returns
// the directory of its own socket.
func startProxy(t *testing.T, serverDir string) (*partitionProxy, string) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &partitionProxy{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hdr := make([]byte, 8) // length, then protocol version or request code
			if _, err := io.ReadFull(c, hdr); err != nil || binary.BigEndian.Uint32(hdr[4:]) == 80877102 {
				c.Close() // a CancelRequest
				continue
			}
			s, err := net.Dial("unix", filepath.Join(serverDir, ".s.PGSQL.5432"))
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.clients = append(p.clients, c)
			p.mu.Unlock()
			s.Write(hdr)
			go io.Copy(s, c)
			go io.Copy(c, s)
		}
	}()
	return p, dir
}

func (p *partitionProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = nil
}

// TestSetAuxPartition: SetAux's COMMIT waits for the synchronous standby
// when the network to the database is cut (its backend does not notice).
// Reading the value back must wait for that transaction, as Commit's
// settle does: it read the old value at once and answered ErrNotPersisted
// for a value then stored. While the transaction holds the row, the
// outcome is ambiguous.
func TestSetAuxPartition(t *testing.T) {
	pgtest.Shared(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ctx := context.Background()
	direct, err := url.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	q := direct.Query()
	proxy, dir := startProxy(t, q.Get("host"))
	q.Set("host", dir)
	u := *direct
	u.RawQuery = q.Encode()
	s, err := Open(ctx, u.String(), Options{Logger: quiet, Timeout: time.Second, ResolveTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Create(ctx, tlog.Meta{Name: "x", VKeys: []string{"x+1+AQ"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAux(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	standby := func(names string) { setStandby(t, pg, names) }
	t.Cleanup(func() { standby("") })
	standby("ghost")
	stored := make(chan error, 1)
	go func() { stored <- s.SetAux(ctx, "k", []byte("new")) }()
	waitSyncRep(t, pg, "")
	proxy.partition()
	var got error
	select {
	case got = <-stored:
	case <-time.After(30 * time.Second):
		t.Fatal("SetAux did not answer 30s after the partition")
	}
	standby("") // the lost COMMIT completes
	var v string
	db := strings.TrimPrefix(direct.Path, "/")
	for deadline := time.Now().Add(30 * time.Second); v != "new" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := pgQuery(t, pg, db, `SELECT convert_from(value, 'UTF8') FROM sumd_aux WHERE key = 'k'`, &v); err != nil {
			t.Fatal(err)
		}
	}
	if v != "new" {
		t.Fatalf("stored value %q after the standby was switched off, want the lost COMMIT's \"new\"", v)
	}
	if got == nil || errors.Is(got, tlog.ErrNotPersisted) {
		t.Errorf("SetAux whose COMMIT was lost while it waited for the standby answered %v, want an ambiguous error", got)
	}
}
