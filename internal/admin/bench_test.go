package admin

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAdd measures the bulk path of issue 11 item 3 as CI systems use
// it: 512 concurrent writers, each posting one version (two go.sum lines)
// per POST /admin/add over loopback HTTP, every answer durable and covered
// by a signed tree head. cpu-µs/record is the process's CPU time per
// record, the writers' HTTP client included.
func BenchmarkAdd(b *testing.B) {
	s := newSetup(b, Options{})
	var next atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	cpu0 := processCPU()
	b.SetParallelism(256) // 512 writers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := fakeRec(int(next.Add(1)), "")
			req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/admin/add", strings.NewReader(string(r.Text())))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Error(fmt.Errorf("POST /admin/add: %s", resp.Status))
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
