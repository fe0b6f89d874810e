// Command load drives a running sumd over loopback HTTP and reports
// throughput, latency and, given the server's pid, the server's CPU time
// per request. scripts/load.sh and make bench-compare run it.
//
//	-mode lookup   go-command-like readers: a lookup, then a full hash tile,
//	               of the records scripts/load.sh seeds, for -duration
//	-mode add      writers pushing one record each per POST /admin/add
//	               (go.sum lines), like CI systems, for -duration
//	-mode first    first lookups of -versions versions a generated GOPROXY
//	               tree holds (example.com/first/m<i>@v1.0.0), each once:
//	               sumd fetches, hashes and records every one
//	-mode upload   POST /admin/upload of the zips of such a tree, each once
//
// It talks only to the URL it is given.
//
//	go run ./scripts/load -url http://127.0.0.1:8080 -records 100000 -clients 64 -duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type options struct {
	url       string
	mode      string
	records   int
	clients   int
	duration  time.Duration
	versions  int
	proxyDir  string
	tokenFile string
	token     string
	pid       int
	prefix    string
	offset    int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "sumd base URL (loopback only)")
	flag.StringVar(&o.mode, "mode", "lookup", "lookup, add, first or upload")
	flag.IntVar(&o.records, "records", 100000, "lookup: records in the log, named as scripts/load.sh seeds them")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (at most 5m); first and upload stop when every version is done")
	flag.IntVar(&o.versions, "versions", 1000, "first, upload: how many versions of the generated GOPROXY tree to record")
	flag.IntVar(&o.offset, "offset", 0, "first, upload: the first version's number (m<offset>)")
	flag.StringVar(&o.proxyDir, "proxy-dir", "", "upload: the generated GOPROXY tree")
	flag.StringVar(&o.tokenFile, "token-file", "", "add, upload: admin token file")
	flag.StringVar(&o.prefix, "prefix", "example.com/add", "add: module path prefix, different for every run against one log")
	flag.IntVar(&o.pid, "pid", 0, "server process id, to report its CPU time per request (Linux)")
	flag.Parse()
	if o.duration > 5*time.Minute {
		log.Fatal("load: -duration is capped at 5m")
	}
	if !strings.HasPrefix(o.url, "http://127.0.0.1:") && !strings.HasPrefix(o.url, "http://localhost:") {
		log.Fatal("load: -url must be a loopback address")
	}
	if o.tokenFile != "" {
		data, err := os.ReadFile(o.tokenFile)
		if err != nil {
			log.Fatal(err)
		}
		o.token = strings.TrimSpace(string(data))
	}
	res := newResults()
	cpu0 := cpuTime(o.pid)
	start := time.Now()
	switch o.mode {
	case "lookup":
		runLookups(o, res)
	case "add":
		runAdds(o, res)
	case "first":
		runFirst(o, res)
	case "upload":
		runUploads(o, res)
	default:
		log.Fatalf("load: unknown -mode %q", o.mode)
	}
	elapsed := time.Since(start)
	res.print(os.Stdout, o, elapsed, cpuTime(o.pid)-cpu0)
	if res.errors > 0 {
		os.Exit(1)
	}
}

// client is one HTTP client for all workers, keeping a connection per
// worker alive.
func client(o options) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients, MaxConnsPerHost: o.clients}, Timeout: time.Minute}
}

// results collects the latency of every successful request by kind, and
// counts the failures.
type results struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	errors    int
}

func newResults() *results { return &results{latencies: map[string][]time.Duration{}} }

// do sends req and records it under kind; a non-200 answer is an error.
func (res *results) do(ctx context.Context, c *http.Client, kind string, req *http.Request) bool {
	start := time.Now()
	resp, err := c.Do(req.WithContext(ctx))
	if ctx.Err() != nil {
		return false // the run ended mid-request
	}
	ok := err == nil && resp.StatusCode == http.StatusOK
	var body []byte
	if err == nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if !ok {
		if res.errors++; res.errors <= 3 {
			log.Printf("load: %s %s: %v %s %.200s", req.Method, req.URL, err, statusOf(resp), body)
		}
		return false
	}
	res.latencies[kind] = append(res.latencies[kind], time.Since(start))
	return true
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return resp.Status
}

func (res *results) print(w io.Writer, o options, d time.Duration, cpu time.Duration) {
	fmt.Fprintf(w, "load: mode %s, %d clients for %s, %d errors\n", o.mode, o.clients, d.Round(time.Millisecond), res.errors)
	total := 0
	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range res.latencies {
			if !yield(k) {
				return
			}
		}
	})
	for _, kind := range kinds {
		l := res.latencies[kind]
		slices.Sort(l)
		total += len(l)
		q := func(p float64) time.Duration { return l[int(p*float64(len(l)-1))].Round(time.Microsecond) }
		fmt.Fprintf(w, "load: %-7s %8.0f req/s  p50 %v  p99 %v  max %v  (%d requests)\n", kind, float64(len(l))/d.Seconds(), q(0.5), q(0.99), q(1), len(l))
	}
	if o.pid != 0 && total > 0 {
		fmt.Fprintf(w, "load: server CPU %.1f µs/request (%v user+system for %d requests)\n",
			float64(cpu.Microseconds())/float64(total), cpu.Round(time.Millisecond), total)
	}
}
