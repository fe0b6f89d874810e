// Command benchcompare measures sumd side by side with the references of
// issue 11 on this machine, alternating the two in every round on the same
// data, and prints a Markdown table of min/median/max and the ratios:
//
//	lookups          sumd vs x/mod's sumdb.TestServer (scripts/testserver), wrk
//	full hash tiles  sumd vs nginx serving the same tiles as files, wrk
//	full data tiles  sumd vs nginx, wrk
//	                 (each of the three on both of sumd's listeners: the
//	                 main one, net/http, and -read-listen, fasthttp)
//	durable adds     sumd's POST /admin/add vs Tessera v1.0.4's POSIX
//	                 conformance log, each with 512 concurrent writers (the
//	                 hammer for Tessera, scripts/load -mode add for sumd)
//	lookup CPU       sumd's -read-listen vs sumd as it was when issue 11
//	                 was filed (-baseline, a git revision built from this
//	                 repository's history), CPU per lookup, wrk
//	first lookups    sumd fetching from a file:// GOPROXY tree (no reference)
//	uploads          sumd's POST /admin/upload (no reference)
//	import           sumd add -gosum of shuffled go.sum files (no reference)
//
// Everything listens on 127.0.0.1 only and stops when the run ends. nginx
// and wrk come from Debian (apt-get install -y nginx wrk); the Tessera
// binaries are built from the module proxy in a scratch module in a cache
// directory, nothing of theirs in this repository. make bench-compare runs
// it, not make test.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type config struct {
	rounds   int
	records  int
	duration time.Duration
	conns    int
	writers  int
	first    int
	imports  string
	only     string
	cache    string
	work     string
	keep     bool
	baseline string
}

func main() {
	var c config
	flag.IntVar(&c.rounds, "rounds", 3, "alternating rounds per comparison")
	flag.IntVar(&c.records, "records", 100000, "records in the logs the reads run against")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured run")
	flag.IntVar(&c.conns, "conns", 64, "connections of the read runs (wrk)")
	flag.IntVar(&c.writers, "writers", 512, "concurrent writers of the add runs")
	flag.IntVar(&c.first, "first", 5000, "versions recorded per round by first lookups, and by uploads")
	flag.StringVar(&c.imports, "import", "100000,1000000", "sizes of the sumd add -gosum runs, comma-separated")
	flag.StringVar(&c.only, "only", "lookups,tiles,adds,first,upload,import", "comparisons to run, comma-separated")
	flag.StringVar(&c.cache, "cache", defaultCache(), "directory keeping the Tessera build between runs")
	flag.StringVar(&c.work, "work", "", "work directory (default: a new temporary one, removed at the end)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.StringVar(&c.baseline, "baseline", issue11Filed, "git revision of the sumd whose CPU per lookup the lookups compare with (\"\": none)")
	flag.Parse()
	if err := run(c); err != nil {
		log.Fatal("bench-compare: ", err)
	}
}

func defaultCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "sumd-bench")
}

func (c config) runs(what string) bool {
	for _, w := range strings.Split(c.only, ",") {
		if strings.TrimSpace(w) == what {
			return true
		}
	}
	return false
}

func run(c config) error {
	if c.work == "" {
		dir, err := os.MkdirTemp("", "sumd-bench-*")
		if err != nil {
			return err
		}
		c.work = dir
		if !c.keep {
			defer os.RemoveAll(dir)
		}
	}
	// nginx's workers may run as another user: they must read the tiles.
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(c.work, 0o755); err != nil {
		return err
	}
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil && (tool == "wrk" || c.runs("tiles")) {
			return fmt.Errorf("%s is not installed (apt-get install -y nginx wrk): %w", tool, err)
		}
	}
	b := &bench{config: c, report: &report{}}
	defer b.stopAll()
	b.report.loadBefore = loadAverage()
	start := time.Now()
	if err := b.build(); err != nil {
		return err
	}
	if err := b.prepare(); err != nil {
		return err
	}
	for _, step := range []struct {
		name string
		f    func() error
	}{
		{"lookups", b.lookups},
		{"tiles", b.tiles},
		{"adds", b.adds},
		{"first", b.firstLookups},
		{"upload", b.uploads},
		{"import", b.imports},
	} {
		if !c.runs(step.name) {
			continue
		}
		log.Printf("bench-compare: %s", step.name)
		if err := step.f(); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	b.report.loadAfter = loadAverage()
	b.report.print(os.Stdout, c, time.Since(start))
	return nil
}

// goBuild builds pkg into bin, in dir, with extra environment.
func goBuild(dir, bin, pkg string, env ...string) error {
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// issue11Filed is the commit sumd was at when issue 11 was filed: its
// "halve CPU per lookup" is measured against the sumd of this commit.
const issue11Filed = "5ba32bd"

// buildBaseline builds cmd/sumd at git revision rev of the repository in
// the working directory, from a `git archive` of it unpacked in the cache
// directory (the repository itself is left as it is), once per revision.
func buildBaseline(cache, rev string) (string, error) {
	out, err := exec.Command("git", "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("-baseline %s: not a commit of this repository's history (a shallow clone? fetch the history with git fetch --unshallow, or pass -baseline= to leave the baseline out): %v", rev, err)
	}
	full := strings.TrimSpace(string(out))
	bin := filepath.Join(cache, "sumd-"+full)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	tree := filepath.Join(cache, "tree-"+full)
	os.RemoveAll(tree)
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	archive := exec.Command("git", "archive", full)
	untar := exec.Command("tar", "-x", "-C", tree)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	untar.Stdin = pipe
	var errs bytes.Buffer
	archive.Stderr, untar.Stderr = &errs, &errs
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return "", fmt.Errorf("git archive %s: %v\n%s", full, err, errs.String())
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("unpacking git archive %s: %v\n%s", full, err, errs.String())
	}
	log.Printf("bench-compare: building sumd at %s (once)", rev)
	if err := goBuild(tree, bin+".tmp", "./cmd/sumd"); err != nil {
		return "", err
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// tesseraVersion is the Tessera release the adds are compared with.
const tesseraVersion = "v1.0.4"

// buildTessera builds Tessera's POSIX conformance log and its hammer in a
// scratch module in the cache directory, once (PROTOCOL.md §6).
func buildTessera(cache string) (posix, hammer string, err error) {
	dir := filepath.Join(cache, "tessera-"+tesseraVersion)
	posix, hammer = filepath.Join(dir, "posix"), filepath.Join(dir, "hammer")
	if _, err1 := os.Stat(posix); err1 == nil {
		if _, err2 := os.Stat(hammer); err2 == nil {
			return posix, hammer, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	steps := [][]string{
		{"go", "mod", "init", "scratch"},
		{"go", "get", "github.com/transparency-dev/tessera/cmd/conformance/posix@" + tesseraVersion,
			"github.com/transparency-dev/tessera/internal/hammer@" + tesseraVersion},
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		steps = steps[1:]
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	log.Printf("bench-compare: building Tessera %s in %s (a few minutes, once)", tesseraVersion, dir)
	if err := goBuild(dir, posix+".tmp", "github.com/transparency-dev/tessera/cmd/conformance/posix", env...); err != nil {
		return "", "", err
	}
	if err := goBuild(dir, hammer+".tmp", "github.com/transparency-dev/tessera/internal/hammer", env...); err != nil {
		return "", "", err
	}
	if err := os.Rename(posix+".tmp", posix); err != nil {
		return "", "", err
	}
	return posix, hammer, os.Rename(hammer+".tmp", hammer)
}
