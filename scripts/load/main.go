// Command load drives a running sumd with concurrent go-command-like
// clients (lookups and the tiles they read) for a bounded time and reports
// throughput and latency. It talks only to the URL it is given; scripts/load.sh
// runs it against a sumd on 127.0.0.1.
//
//	go run ./scripts/load -url http://127.0.0.1:8080 -records 100000 -clients 64 -duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "sumd base URL (loopback only)")
	records := flag.Int("records", 100000, "records in the log, named as scripts/load.sh seeds them")
	clients := flag.Int("clients", 64, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "how long to run (at most 5m)")
	flag.Parse()
	if *duration > 5*time.Minute {
		log.Fatal("load: -duration is capped at 5m")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	res := run(ctx, *url, *records, *clients)
	res.print(os.Stdout, *duration, *clients)
	if res.errors > 0 {
		os.Exit(1)
	}
}

// A request is what one client asks: a lookup, as the go command does for
// each new module version, then a full hash tile, as it does to verify.
func request(r *rand.Rand, records int) (lookup, tile string) {
	i := r.IntN(records)
	lookup = fmt.Sprintf("/lookup/example.com/load/m%d@v1.0.%d", i/1000, i%1000)
	t := tlog.Tile{H: 8, L: 0, N: int64(r.IntN(max(records>>8, 1))), W: 256}
	return lookup, "/" + t.Path()
}

type results struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	errors    int
}

func run(ctx context.Context, url string, records, clients int) *results {
	res := &results{latencies: map[string][]time.Duration{}}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for ctx.Err() == nil {
				lookup, tile := request(r, records)
				res.get(ctx, client, "lookup", url+lookup)
				res.get(ctx, client, "tile", url+tile)
			}
		})
	}
	wg.Wait()
	return res
}

func (res *results) get(ctx context.Context, c *http.Client, kind, url string) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if ctx.Err() != nil {
		return // the run ended mid-request
	}
	ok := err == nil && resp.StatusCode == http.StatusOK
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if !ok {
		if res.errors++; res.errors <= 3 {
			log.Printf("load: GET %s: %v %v", url, err, statusOf(resp))
		}
		return
	}
	res.latencies[kind] = append(res.latencies[kind], time.Since(start))
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return resp.Status
}

func (res *results) print(w io.Writer, d time.Duration, clients int) {
	fmt.Fprintf(w, "load: %d clients for %s, %d errors\n", clients, d, res.errors)
	for _, kind := range []string{"lookup", "tile"} {
		l := res.latencies[kind]
		slices.Sort(l)
		if len(l) == 0 {
			continue
		}
		q := func(p float64) time.Duration { return l[int(p*float64(len(l)-1))].Round(time.Microsecond) }
		fmt.Fprintf(w, "load: %-6s %8.0f req/s  p50 %v  p99 %v  max %v\n", kind, float64(len(l))/d.Seconds(), q(0.5), q(0.99), q(1))
	}
}
