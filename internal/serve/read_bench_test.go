package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// BenchmarkReadSurface measures a read listener's handler alone, in
// process: CPU and allocations of a cached lookup without the network.
func BenchmarkReadSurface(b *testing.B) {
	skey, _, err := tlog.GenerateKey("bench.example.com")
	if err != nil {
		b.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := tlog.Open(filepath.Join(b.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 1000
	if _, err := l.Add(context.Background(), readRecords(n)...); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	layer, err := access.New(access.Config{Databases: []string{l.Name()}, Registry: reg, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(l.Name(), l, server.Options{Logger: quiet, Registry: reg})
	rs := &readSurface{layer: layer, dbs: newDatabases(srv, l.Name(), nil)}
	reqs := make([]*fasthttp.Request, n)
	for i := range reqs {
		reqs[i] = new(fasthttp.Request)
		reqs[i].SetRequestURI(fmt.Sprintf("/lookup/example.com/m%d@v1.%d.0", i, i))
		reqs[i].Header.SetHost("127.0.0.1:1")
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	var c fasthttp.RequestCtx
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Init(reqs[i%n], addr, nil)
		rs.serve(context.Background(), &c)
		if c.Response.StatusCode() != 200 {
			b.Fatalf("%s", c.Response.Body())
		}
		c.Response.Reset()
		i++
	}
}
