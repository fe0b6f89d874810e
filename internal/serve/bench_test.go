package serve

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkPage measures the status page's requests over loopback HTTP on
// a log of 508 records (one module of 505 versions): what one anonymous
// request costs.
func BenchmarkPage(b *testing.B) {
	for _, path := range []string{"/", "/status", "/healthz", "/module?path=example.com/big", "/module?path=example.com/", "/record?id=300"} {
		b.Run(path, func(b *testing.B) {
			url := pageServer(b)
			client := &http.Client{}
			b.ResetTimer()
			for b.Loop() {
				resp, err := client.Get(url + path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("GET %s: %s", path, resp.Status)
				}
			}
		})
	}
}
