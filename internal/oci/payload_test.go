package oci

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/module"
)

// TestSignaturePayloadCapped: a hostile registry answers the .sig tag of
// an unsigned artifact with layers declaring megabytes each. sumd reads
// none of them (cosign would read up to 128 MiB of each of 1,000 layers,
// twice) and counts the artifact's signatures as bad, saying why. So is
// a layer declaring a negative size, which cosign refuses to read: it is a
// bad signature, not a registry failure failing the artifact every pass.
func TestSignaturePayloadCapped(t *testing.T) {
	for _, size := range []int{8 << 20, -1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testSignaturePayloadCapped(t, size) })
	}
}

func testSignaturePayloadCapped(t *testing.T, size int) {
	const layers = 4
	e := newSyncEnv(t, false)
	n := module.Version{Path: "example.com/n", Version: "v1.0.0"}
	e.push(t, testModule(t, n, map[string]string{"go.mod": "module example.com/n\n"}), nil)
	fake := "sha256:" + strings.Repeat("ab", 32)
	var served atomic.Int64
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/v2/gomod/example.com/n/manifests/sha256-") && strings.HasSuffix(p, ".sig"):
			var ls []string
			for range layers {
				ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":%d,"digest":"%s","annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ=="}}`, size, fake))
			}
			body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[` + strings.Join(ls, ",") + `]}`
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			if r.Method != http.MethodHead {
				w.Write([]byte(body))
			}
			return true
		case strings.HasSuffix(p, "/blobs/"+fake):
			w.Header().Set("Content-Length", fmt.Sprint(size))
			buf := make([]byte, 1<<20)
			for range max(size, 0) >> 20 {
				m, err := w.Write(buf)
				served.Add(int64(m))
				if err != nil {
					break
				}
			}
			return true
		}
		return false
	})
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
		Remote: testRemote, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := served.Load(); got != 0 {
		t.Errorf("the registry served %d bytes of signature payloads, want none read", got)
	}
	if r.Counts[BadSignature] != 1 || !strings.Contains(e.logs.String(), fmt.Sprintf("a signature payload of %d bytes, outside the 0 to 65536 a signature takes", size)) {
		t.Errorf("outcomes %v, want the artifact's signatures bad, saying why\n%s", r.Counts, e.logs)
	}
}
