package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk send GETs of random paths from a file, one per line.
const wrkScript = `
local paths = {}
for line in io.lines(%q) do paths[#paths + 1] = line end
local n = #paths
local i = 0
function setup(thread) i = i + 1; thread:set("seed", i) end
function init() math.randomseed(os.time() * 7919 + seed) end
function request() return wrk.format("GET", paths[math.random(n)]) end
`

// A wrkResult is what one wrk run measured.
type wrkResult struct {
	rps  float64       // requests per second
	p99  time.Duration // latency
	cpu  time.Duration // the server's CPU time during the run
	reqs float64       // requests completed
}

// cpuPerReq is the server's CPU time per request.
func (r wrkResult) cpuPerReq() time.Duration {
	if r.reqs == 0 {
		return 0
	}
	return time.Duration(float64(r.cpu) / r.reqs)
}

// runWrk drives the server at url (process pid) with conns connections
// asking the paths in pathsFile for d.
func runWrk(work, url, pathsFile string, pid, conns int, d time.Duration) (wrkResult, error) {
	script := filepath.Join(work, filepath.Base(pathsFile)+".lua")
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, pathsFile), 0o644); err != nil {
		return wrkResult{}, err
	}
	cpu0 := cpuOf(pid)
	out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%s", d), "--latency", "-s", script, url).CombinedOutput()
	cpu := cpuOf(pid) - cpu0
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("Non-2xx")) || bytes.Contains(out, []byte("Socket errors")) {
		return wrkResult{}, fmt.Errorf("wrk saw errors:\n%s", out)
	}
	res := wrkResult{cpu: cpu}
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out); m != nil {
		res.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := regexp.MustCompile(`(\d+) requests in`).FindSubmatch(out); m != nil {
		res.reqs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := regexp.MustCompile(`99%\s+([0-9.]+)(us|ms|s)`).FindSubmatch(out); m != nil {
		res.p99 = parseWrkDuration(string(m[1]), string(m[2]))
	}
	if res.rps == 0 {
		return wrkResult{}, fmt.Errorf("wrk: no rate in its output:\n%s", out)
	}
	return res, nil
}

func parseWrkDuration(num, unit string) time.Duration {
	v, _ := strconv.ParseFloat(num, 64)
	switch strings.TrimSpace(unit) {
	case "us":
		return time.Duration(v * float64(time.Microsecond))
	case "ms":
		return time.Duration(v * float64(time.Millisecond))
	}
	return time.Duration(v * float64(time.Second))
}
