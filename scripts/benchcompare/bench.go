package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A bench holds the built binaries, the data and the running servers.
type bench struct {
	config
	report *report

	sumd, testserver, load, posix, hammer string // binaries
	baselineSumd                          string // sumd at -baseline, or ""

	gosum, key, vkey, token, proxy string // data files
	sumdURL, testURL, nginxURL     string
	readURL                        string // sumd's -read-listen
	sumdProc, testProc, nginxProc  *proc
	procs                          []*proc
}

func (b *bench) path(name string) string { return filepath.Join(b.work, name) }

func (b *bench) build() error {
	b.sumd, b.testserver, b.load = b.path("sumd"), b.path("testserver"), b.path("load")
	for bin, pkg := range map[string]string{b.sumd: "./cmd/sumd", b.testserver: "./scripts/testserver", b.load: "./scripts/load"} {
		if err := goBuild(".", bin, pkg); err != nil {
			return err
		}
	}
	var err error
	if b.baseline != "" && b.runs("lookups") {
		if b.baselineSumd, err = buildBaseline(b.cache, b.baseline); err != nil {
			return err
		}
	}
	if !b.runs("adds") {
		return nil
	}
	b.posix, b.hammer, err = buildTessera(b.cache)
	return err
}

// prepare writes the data and starts the servers the rounds compare.
func (b *bench) prepare() error {
	b.gosum, b.key, b.vkey = b.path("load.sum"), b.path("keys/bench.example.key"), b.path("keys/bench.example.vkey")
	if err := writeGoSum(b.gosum, b.records, false); err != nil {
		return err
	}
	if err := b.sumdCmd("keygen", "-name", "bench.example", "-key-dir", b.path("keys")); err != nil {
		return err
	}
	if err := b.sumdCmd("add", "-create", "-db", b.path("sumd.db"), "-key", b.key, "-gosum", b.gosum, "-log-level", "warn"); err != nil {
		return err
	}
	b.token = b.path("admin.token")
	if err := os.WriteFile(b.token, []byte("bench-compare-admin-token-0123456789\n"), 0o600); err != nil {
		return err
	}
	// sumd refuses a file:// upstream whose tree is missing, so the tree
	// exists, empty, when no comparison fetches from it.
	b.proxy = b.path("proxy")
	if err := os.MkdirAll(b.proxy, 0o755); err != nil {
		return err
	}
	if b.runs("first") || b.runs("upload") {
		log.Printf("bench-compare: writing a GOPROXY tree of %d versions", 2*b.rounds*b.first)
		if err := writeProxyTree(b.proxy, 2*b.rounds*b.first); err != nil {
			return err
		}
	}
	var err error
	port, readPort := freePort(), freePort()
	b.sumdURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	b.readURL = fmt.Sprintf("http://127.0.0.1:%d", readPort)
	b.sumdProc, err = b.start("sumd", b.sumd, "serve", "-db", b.path("sumd.db"), "-key", b.key,
		"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-read-listen", fmt.Sprintf("127.0.0.1:%d", readPort),
		"-log-level", "warn", "-admin-token-file", b.token, "-upstream", "file://"+b.proxy)
	if err != nil {
		return err
	}
	if err := b.sumdProc.waitHTTP(b.sumdURL+"/healthz", 30*time.Second); err != nil {
		return err
	}
	if err := b.sumdProc.waitHTTP(b.readURL+"/healthz", 5*time.Second); err != nil {
		return err
	}
	if b.runs("lookups") {
		port := freePort()
		b.testURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		if b.testProc, err = b.start("testserver", b.testserver, "-gosum", b.gosum, "-key", b.key, "-listen", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			return err
		}
		if err := b.testProc.waitHTTP(b.testURL+"/latest", 5*time.Minute); err != nil {
			return err
		}
	}
	if b.runs("tiles") {
		return b.startNginx()
	}
	return nil
}

// startNginx exports sumd's full tiles as files and serves them with nginx.
func (b *bench) startNginx() error {
	if _, err := exec.LookPath("nginx"); err != nil {
		return fmt.Errorf("nginx is not installed (apt-get install -y nginx wrk): %w", err)
	}
	root := b.path("www")
	for _, data := range []bool{false, true} {
		if err := exportTiles(b.sumdURL, root, tilePaths(b.records, data)); err != nil {
			return err
		}
	}
	port := freePort()
	conf := b.path("nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(b.work, root, port)), 0o644); err != nil {
		return err
	}
	var err error
	if b.nginxProc, err = b.start("nginx", "nginx", "-c", conf, "-e", b.path("nginx.error.log")); err != nil {
		return err
	}
	b.nginxURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	return b.nginxProc.waitHTTP(b.nginxURL+tilePaths(b.records, false)[0], 10*time.Second)
}

func (b *bench) start(name, bin string, args ...string) (*proc, error) {
	p, err := start(b.work, name, bin, args...)
	if err == nil {
		b.procs = append(b.procs, p)
	}
	return p, err
}

func (b *bench) stopAll() {
	for _, p := range b.procs {
		p.stop()
	}
}

func (b *bench) sumdCmd(args ...string) error {
	out, err := exec.Command(b.sumd, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sumd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A rowKind says what a read row compares.
type rowKind int

const (
	rpsRow rowKind = iota // requests per second
	cpuRow                // the server's CPU time per request
)

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}

// alternate runs sumd's and the reference's measurement of one round, in
// an order that alternates between rounds.
func alternate(round int, sumd, ref func() error) error {
	first, second := sumd, ref
	if round%2 == 1 {
		first, second = ref, sumd
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// readRow measures reads of paths from sumd at sumdURL (the process
// sumdPID) and from the reference at url (pid).
//
// The row compares requests per second, or with cpuRow the CPU time per
// request of the two servers.
func (b *bench) readRow(name, sumdURL, refName, url string, pid int, paths []string, sumdPID int, kind rowKind) error {
	file := b.path(strings.ReplaceAll(name, " ", "-") + ".paths")
	if err := writeLines(file, paths); err != nil {
		return err
	}
	row := b.report.row(name, refName)
	// A first short run warms both up: sumd's cache, nginx's page cache.
	for _, u := range []struct {
		url string
		pid int
	}{{sumdURL, sumdPID}, {url, pid}} {
		if _, err := runWrk(b.work, u.url, file, u.pid, b.conns, 2*time.Second); err != nil {
			return err
		}
	}
	for r := range b.rounds {
		var s, ref wrkResult
		err := alternate(r, func() (err error) {
			s, err = runWrk(b.work, sumdURL, file, sumdPID, b.conns, b.duration)
			return err
		}, func() (err error) {
			ref, err = runWrk(b.work, url, file, pid, b.conns, b.duration)
			return err
		})
		if err != nil {
			return err
		}
		if kind == cpuRow {
			row.add(float64(s.cpuPerReq().Nanoseconds())/1e3, float64(ref.cpuPerReq().Nanoseconds())/1e3, "µs CPU per request")
		} else {
			row.add(s.rps, ref.rps, "req/s")
		}
		row.detail(s, ref)
	}
	return nil
}

// listeners are what the read rows measure: both of sumd's listeners, the
// main one (net/http) and -read-listen (fasthttp), each against the same
// reference.
func (b *bench) listeners() []struct{ name, url string } {
	return []struct{ name, url string }{{"main listener", b.sumdURL}, {"-read-listen", b.readURL}}
}

func (b *bench) lookups() error {
	for _, l := range b.listeners() {
		if err := b.readRow(fmt.Sprintf("lookups, %d records, %d connections, %s", b.records, b.conns, l.name), l.url, "x/mod sumdb.TestServer",
			b.testURL, b.testProc.pid(), lookupPaths(b.records, 100000), b.sumdProc.pid(), rpsRow); err != nil {
			return err
		}
	}
	if b.baselineSumd == "" {
		return nil
	}
	// The baseline serves a copy of the same database (bbolt locks a file
	// to one process): the revisions since read it alike.
	db := b.path("baseline.db")
	if err := copyFile(b.path("sumd.db"), db); err != nil {
		return err
	}
	port := freePort()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	p, err := b.start("baseline", b.baselineSumd, "serve", "-db", db, "-key", b.key,
		"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "warn")
	if err != nil {
		return err
	}
	defer p.stop()
	if err := p.waitHTTP(url+"/healthz", 30*time.Second); err != nil {
		return err
	}
	return b.readRow(fmt.Sprintf("lookup CPU, -read-listen vs sumd %s (issue 11 filed)", b.baseline), b.readURL, "sumd "+b.baseline+", its only listener",
		url, p.pid(), lookupPaths(b.records, 100000), b.sumdProc.pid(), cpuRow)
}

func (b *bench) tiles() error {
	for _, data := range []bool{false, true} {
		kind := "hash"
		if data {
			kind = "data"
		}
		for _, l := range b.listeners() {
			if err := b.readRow(fmt.Sprintf("full %s tiles, %s", kind, l.name), l.url, "nginx, same tiles as files",
				b.nginxURL, b.nginxProc.pid(), tilePaths(b.records, data), b.sumdProc.pid(), rpsRow); err != nil {
				return err
			}
		}
	}
	return nil
}

// adds compares durable appends by b.writers concurrent writers: for each,
// the tree size its signed head shows grows by so many records in a window
// of b.duration, after a warm-up of 3 s, while the writers keep writing.
func (b *bench) adds() error {
	tess, err := b.startTessera()
	if err != nil {
		return err
	}
	row := b.report.row(fmt.Sprintf("durable adds, %d concurrent writers", b.writers), "Tessera "+tesseraVersion+" POSIX log + hammer")
	for r := range b.rounds {
		var s, ref window
		err := alternate(r, func() (err error) {
			s, err = b.sumdAdds(r)
			return err
		}, func() (err error) {
			ref, err = b.tesseraAdds(tess)
			return err
		})
		if err != nil {
			return err
		}
		row.add(s.rate(), ref.rate(), "records/s")
		row.cpu(s.cpuPer(), ref.cpuPer())
	}
	return nil
}

// A window is what a server did between two samples.
type window struct {
	n   int64         // records added
	d   time.Duration // time
	cpu time.Duration // the server's CPU time
}

func (w window) rate() float64 { return float64(w.n) / w.d.Seconds() }
func (w window) cpuPer() time.Duration {
	if w.n == 0 {
		return 0
	}
	return w.cpu / time.Duration(w.n)
}

// measure samples size and the CPU time of pid, waits b.duration, and
// samples them again.
func (b *bench) measure(pid int, size func() (int64, error)) (window, error) {
	time.Sleep(3 * time.Second) // warm-up
	n0, err := size()
	if err != nil {
		return window{}, err
	}
	c0, t0 := cpuOf(pid), time.Now()
	time.Sleep(b.duration)
	n1, err := size()
	if err != nil {
		return window{}, err
	}
	return window{n: n1 - n0, d: time.Since(t0), cpu: cpuOf(pid) - c0}, nil
}

func (b *bench) sumdAdds(round int) (window, error) {
	load := exec.Command(b.load, "-url", b.sumdURL, "-mode", "add", "-clients", strconv.Itoa(b.writers),
		"-duration", (b.duration + 5*time.Second).String(), "-token-file", b.token,
		"-prefix", fmt.Sprintf("example.com/add/r%d", round))
	var out bytes.Buffer
	load.Stdout, load.Stderr = &out, &out
	if err := load.Start(); err != nil {
		return window{}, err
	}
	w, err := b.measure(b.sumdProc.pid(), func() (int64, error) { return treeSizeAt(b.sumdURL + "/latest") })
	if werr := load.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("load -mode add: %v\n%s", werr, out.String())
	}
	if err == nil {
		err = b.settle()
	}
	return w, err
}

// settle waits until sumd's tree stops growing: adds that the load's
// writers gave up on at the end of their run may still be committed (the
// server does not withdraw a record it has queued), and the next phase
// counts the records it adds by the growth of the tree.
func (b *bench) settle() error {
	last := int64(-1)
	for range 60 {
		n, err := treeSizeAt(b.sumdURL + "/latest")
		if err != nil {
			return err
		}
		if n == last {
			return nil
		}
		last = n
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("sumd's tree still grew 30s after the adds' writers stopped")
}

// A tessera is the running Tessera POSIX log.
type tessera struct {
	proc *proc
	url  string
	dir  string
}

func (b *bench) startTessera() (*tessera, error) {
	if err := b.sumdCmd("keygen", "-name", "tessera.example", "-key-dir", b.path("tessera-keys")); err != nil {
		return nil, err
	}
	port := freePort()
	t := &tessera{url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: b.path("tessera")}
	var err error
	t.proc, err = b.start("tessera", b.posix, "--storage_dir", t.dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--private_key", b.path("tessera-keys/tessera.example.key"))
	if err != nil {
		return nil, err
	}
	return t, t.proc.waitHTTP(t.url+"/checkpoint", 30*time.Second)
}

// tesseraAdds runs the hammer with b.writers writers of go.sum-sized
// leaves, no duplicates and no readers, and measures the checkpoint.
func (b *bench) tesseraAdds(t *tessera) (window, error) {
	vkey, err := os.ReadFile(b.path("tessera-keys/tessera.example.vkey"))
	if err != nil {
		return window{}, err
	}
	hammer := exec.Command(b.hammer, "--log_url", t.url+"/", "--log_public_key", strings.TrimSpace(string(vkey)),
		"--num_writers", strconv.Itoa(b.writers), "--max_write_ops", "1000000", "--leaf_min_size", "180",
		"--dup_chance", "0", "--num_readers_random", "0", "--num_readers_full", "0",
		"--max_runtime", (b.duration + 30*time.Second).String(), "--show_ui=false")
	var out bytes.Buffer
	hammer.Stdout, hammer.Stderr = &out, &out
	hammer.SysProcAttr = nil
	if err := hammer.Start(); err != nil {
		return window{}, err
	}
	w, err := b.measure(t.proc.pid(), func() (int64, error) { return checkpointSize(filepath.Join(t.dir, "checkpoint")) })
	hammer.Process.Kill()
	hammer.Wait()
	if err == nil && w.n == 0 {
		err = fmt.Errorf("the hammer wrote nothing:\n%s", out.String())
	}
	return w, err
}

// treeSizeAt reads the tree size of the signed head at url.
func treeSizeAt(url string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return secondLine(data)
}

// checkpointSize reads the tree size of a Tessera checkpoint file.
func checkpointSize(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return secondLine(data)
}

// secondLine parses the tree size of a signed note of a tree head: the
// second line of "go.sum database tree" and of a C2SP checkpoint alike.
func secondLine(note []byte) (int64, error) {
	lines := strings.SplitN(string(note), "\n", 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("not a tree head: %q", note)
	}
	return strconv.ParseInt(lines[1], 10, 64)
}

// firstLookups looks up b.first new versions per round, as many at once
// as sumd fetches (its -upstream-parallel, 16): every one is fetched from
// the file:// tree, validated, hashed and recorded.
func (b *bench) firstLookups() error {
	row := b.report.row("first lookups from a file:// GOPROXY (fetch, validate, hash, record), 16 at once", "")
	for r := range b.rounds {
		w, err := b.loadOnce("first", r*b.first)
		if err != nil {
			return err
		}
		row.add(w.rate(), 0, "records/s")
		row.cpu(w.cpuPer(), 0)
	}
	return nil
}

func (b *bench) uploads() error {
	row := b.report.row("admin uploads of module zips (validate, hash, record), 16 at once", "")
	for r := range b.rounds {
		w, err := b.loadOnce("upload", (b.rounds+r)*b.first)
		if err != nil {
			return err
		}
		row.add(w.rate(), 0, "records/s")
		row.cpu(w.cpuPer(), 0)
	}
	return nil
}

// loadOnce records b.first versions from offset with scripts/load.
func (b *bench) loadOnce(mode string, offset int) (window, error) {
	n0, err := treeSizeAt(b.sumdURL + "/latest")
	if err != nil {
		return window{}, err
	}
	c0, t0 := cpuOf(b.sumdProc.pid()), time.Now()
	out, err := exec.Command(b.load, "-url", b.sumdURL, "-mode", mode, "-clients", "16", "-versions", strconv.Itoa(b.first),
		"-offset", strconv.Itoa(offset), "-proxy-dir", b.proxy, "-token-file", b.token).CombinedOutput()
	if err != nil {
		return window{}, fmt.Errorf("load -mode %s: %v\n%s", mode, err, out)
	}
	w := window{d: time.Since(t0), cpu: cpuOf(b.sumdProc.pid()) - c0}
	n1, err := treeSizeAt(b.sumdURL + "/latest")
	w.n = n1 - n0
	if err == nil && w.n != int64(b.first) {
		err = fmt.Errorf("load -mode %s recorded %d versions, want %d", mode, w.n, b.first)
	}
	return w, err
}

// imports times sumd add -gosum of shuffled go.sum files into new logs.
var importLine = regexp.MustCompile(`added (\d+) records`)

func (b *bench) imports() error {
	for _, f := range strings.Split(b.config.imports, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -import size %q", f)
		}
		file := b.path(fmt.Sprintf("import-%d.sum", n))
		if err := writeGoSum(file, n, true); err != nil {
			return err
		}
		row := b.report.row(fmt.Sprintf("sumd add -gosum, %d records in random order, new log", n), "")
		db := b.path(fmt.Sprintf("import-%d.db", n))
		start := time.Now()
		cmd := exec.Command(b.sumd, "add", "-create", "-db", db, "-key", b.key, "-gosum", file, "-log-level", "warn")
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			return fmt.Errorf("sumd add -gosum: %v\n%s", err, out)
		}
		if m := importLine.FindSubmatch(out); m == nil || string(m[1]) != strconv.Itoa(n) {
			return fmt.Errorf("sumd add -gosum did not add %d records:\n%s", n, out)
		}
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		row.add(float64(n)/d.Seconds(), 0, "records/s")
		row.cpu(cpu/time.Duration(n), 0)
		os.Remove(file)
		os.RemoveAll(db)
		os.RemoveAll(db + ".tmp")
	}
	return nil
}
