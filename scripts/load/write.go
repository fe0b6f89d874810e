package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// runAdds runs o.clients writers, each posting one record (two go.sum
// lines) per request to /admin/add until the time is up: every 200 is a
// record durable and covered by a signed tree head.
func runAdds(o options, res *results) {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	c := client(o)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1)
				path := fmt.Sprintf("%s/m%d", o.prefix, i)
				body := fmt.Sprintf("%s v1.0.0 %s\n%s v1.0.0/go.mod %s\n", path, fakeHash(path), path, fakeHash(path+"/go.mod"))
				req, _ := http.NewRequest(http.MethodPost, o.url+"/admin/add", bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "text/plain")
				req.Header.Set("Authorization", "Bearer "+o.token)
				res.do(ctx, c, "add", req)
			}
		})
	}
	wg.Wait()
}

// fakeHash is a well-formed h1: hash of s.
func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

// firstPath is the i'th version of a generated GOPROXY tree (see
// scripts/benchcompare): example.com/first/m<i>@v1.0.0.
func firstPath(i int) string { return fmt.Sprintf("example.com/first/m%d", i) }

// runFirst looks each version of the generated tree up once, o.clients at
// a time: every lookup is a miss that sumd fetches, hashes and records.
func runFirst(o options, res *results) {
	each(o, func(c *http.Client, i int) {
		res.do(context.Background(), c, "first", get(fmt.Sprintf("%s/lookup/%s@v1.0.0", o.url, firstPath(i))))
	})
}

// runUploads uploads each zip of the generated tree once.
func runUploads(o options, res *results) {
	each(o, func(c *http.Client, i int) {
		zip, err := os.ReadFile(filepath.Join(o.proxyDir, firstPath(i), "@v", "v1.0.0.zip"))
		if err != nil {
			res.fail(err)
			return
		}
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("module", firstPath(i))
		mw.WriteField("version", "v1.0.0")
		fw, _ := mw.CreateFormFile("zip", "zip")
		io.Copy(fw, bytes.NewReader(zip))
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, o.url+"/admin/upload", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+o.token)
		res.do(context.Background(), c, "upload", req)
	})
}

// each runs f for every version o.offset … o.offset+o.versions-1,
// o.clients at a time.
func each(o options, f func(c *http.Client, i int)) {
	c := client(o)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.clients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < o.versions; i = int(next.Add(1) - 1) {
				f(c, o.offset+i)
			}
		})
	}
	wg.Wait()
}

func (res *results) fail(err error) {
	res.mu.Lock()
	defer res.mu.Unlock()
	res.errors++
	fmt.Fprintln(os.Stderr, "load:", err)
}
