// Package packaging holds no code: these tests check the files beside them
// (the systemd unit, the container image's Dockerfile, the example
// configuration, the alerting rules) against the tools, options and
// metrics they name.
package packaging

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/serve"
	"github.com/sumd-project/sumd/internal/testenv"
)

// credentials is where systemd puts the credentials of sumd.service: %d.
const credentials = "/run/credentials/sumd.service"

// unitEnv returns the variables sumd.service's Environment= lines set, %d
// expanded, checking that each credential file named is loaded.
func unitEnv(t *testing.T) []string {
	t.Helper()
	unit, err := os.ReadFile("sumd.service")
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, m := range regexp.MustCompile(`(?m)^Environment=(\S+)$`).FindAllSubmatch(unit, -1) {
		kv := string(m[1])
		if _, cred, ok := strings.Cut(kv, "=%d/"); ok && !bytes.Contains(unit, []byte("\nLoadCredential="+cred+":")) {
			t.Errorf("sumd.service sets %s but loads no credential %s", kv, cred)
		}
		env = append(env, strings.ReplaceAll(kv, "%d", credentials))
	}
	return env
}

// TestExampleConfig loads sumd.yaml as sumd serve -config does under
// sumd.service: every key exists and every value is valid.
func TestExampleConfig(t *testing.T) {
	env := unitEnv(t)
	cfg, _, err := config.LoadServe([]string{"-config", "sumd.yaml"}, env, io.Discard)
	if err != nil {
		t.Fatalf("sumd serve -config sumd.yaml, with sumd.service's environment %q: %v", env, err)
	}
	if cfg.Name != "sum.corp.example" || cfg.Upstream.Upstream == "" || !cfg.Crosscheck || cfg.TLSCert == "" {
		t.Errorf("sumd.yaml loaded as %+v", cfg)
	}
	// Both private keys are credentials: the unit's dynamic user cannot
	// read root's 0600 files under /etc/sumd. sumd.yaml itself names
	// neither, so that no path there overrides them.
	if cfg.Key != credentials+"/signing.key" || cfg.TLSKey != credentials+"/tls.key" {
		t.Errorf("under sumd.service, key = %q and tls-key = %q, want files in %s", cfg.Key, cfg.TLSKey, credentials)
	}
	if _, _, err := config.LoadServe([]string{"-config", "sumd.yaml"}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "tls-cert and tls-key go together") {
		t.Errorf("sumd.yaml alone loads (%v): it names tls-key, which the unit passes as a credential", err)
	}

	// The commented-out examples must stay valid too: uncommented, every
	// one of them loads.
	data, err := os.ReadFile("sumd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`(?m)^#([a-z-]+:)`)
	if len(commented.FindAll(data, -1)) < 5 {
		t.Fatalf("sumd.yaml has fewer commented-out examples than expected")
	}
	all := filepath.Join(t.TempDir(), "sumd.yaml")
	if err := os.WriteFile(all, commented.ReplaceAll(data, []byte("$1")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err = config.LoadServe([]string{"-config", all}, env, io.Discard)
	if err != nil {
		t.Fatalf("sumd.yaml with its examples uncommented: %v", err)
	}
	if cfg.Access.ReadAuth != "basic" || cfg.AdminListen == "" || len(cfg.Mirrors) == 0 {
		t.Errorf("sumd.yaml's examples loaded as %+v", cfg)
	}
}

// TestSystemdUnit checks sumd.service with systemd-analyze: it verifies
// without a warning, and its exposure score stays low.
func TestSystemdUnit(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	unit, err := os.ReadFile("sumd.service")
	if err != nil {
		t.Fatal(err)
	}
	// %d (the credentials directory) needs systemd 248: the header says so.
	if bytes.Contains(unit, []byte("=%d/")) && !bytes.Contains(unit, []byte("\n# Needs systemd 248 or later")) {
		t.Errorf("sumd.service uses %s (the credentials directory), which needs systemd 248, and its header does not say so", "%d")
	}
	// verify checks that ExecStart's binary exists: point it at one that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/sumd"), []byte(self))
	file := filepath.Join(t.TempDir(), "sumd.service")
	if err := os.WriteFile(file, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", file).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The commented-out credentials (admin token, read-auth, the Docker
	// config of OCI sync) verify too, uncommented. DOCKER_CONFIG names a
	// directory: the credentials one, where the credential is config.json.
	if !bytes.Contains(unit, []byte("\n#LoadCredential=config.json:")) || !bytes.Contains(unit, []byte("\n#Environment=DOCKER_CONFIG=%d\n")) {
		t.Errorf("sumd.service lacks the commented-out Docker config credential that docs/oci.md describes")
	}
	options := regexp.MustCompile(`(?m)^#((LoadCredential|Environment)=)`).ReplaceAll(unit, []byte("$1"))
	optFile := filepath.Join(t.TempDir(), "sumd.service")
	if err := os.WriteFile(optFile, options, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", "--man=no", optFile).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify, with the commented-out credentials: %v\n%s", err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", file).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for sumd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	// 0 is a sandbox with nothing exposed, 10 an unprotected service; 1.2
	// when written. A network server cannot reach 0.
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2 {
		t.Errorf("exposure level %.1f, want 2 or less:\n%s", level, out)
	}
}

// TestSystemdProcStat: the process collector reads the boot time in
// /proc/stat for process_start_time_seconds, which the alert rules
// (SumdRestarting, and the uptime guards of SumdOCISyncStale and
// SumdMirrorBehind) need. ProcSubset=pid hides /proc/stat: under
// sumd.service the metric was missing, silently, and those alerts could
// never fire.
func TestSystemdProcStat(t *testing.T) {
	unit, err := os.ReadFile("sumd.service")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("prometheus/sumd-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rules, []byte("process_start_time_seconds")) {
		return // nothing needs it
	}
	if regexp.MustCompile(`(?m)^ProcSubset=pid\s*$`).Match(unit) {
		t.Error("sumd.service sets ProcSubset=pid, which hides /proc/stat: process_start_time_seconds, which the alert rules use, is then never exported")
	}
}

// TestSystemdRestartPolicy: sumd.service restarts sumd after a failure
// (Restart=on-failure) but not after one whose hint says not to start it
// again on the database, which exits with cmd/sumd's exitDoNotRestart: a
// log whose store was rolled back under it, restarted, signs a fork.
func TestSystemdRestartPolicy(t *testing.T) {
	unit, err := os.ReadFile("sumd.service")
	if err != nil {
		t.Fatal(err)
	}
	mainGo, err := os.ReadFile("../cmd/sumd/main.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^const exitDoNotRestart = (\d+)$`).FindSubmatch(mainGo)
	if m == nil {
		t.Fatal("cmd/sumd/main.go has no const exitDoNotRestart = N")
	}
	if !bytes.Contains(unit, []byte("\nRestart=on-failure\n")) {
		t.Error("sumd.service does not restart sumd on failure (Restart=on-failure)")
	}
	if want := "\nRestartPreventExitStatus=" + string(m[1]) + "\n"; !bytes.Contains(unit, []byte(want)) {
		t.Errorf("sumd.service lacks %q: systemd restarts sumd after a failure whose hint says not to start it again", strings.TrimSpace(want))
	}
	// Exit status 2 is a usage error's, and also the Go runtime's for a
	// panic or a fatal error (concurrent map writes, out of memory), which
	// a restart cures: preventing it would leave a crashed sumd down.
	prevent := regexp.MustCompile(`(?m)^RestartPreventExitStatus=(.*)$`).FindAllSubmatch(unit, -1)
	for _, p := range prevent {
		if slices.Contains(strings.Fields(string(p[1])), "2") {
			t.Errorf("sumd.service prevents restarts after exit status 2, which a Go panic or runtime fatal error exits with too: a crashed sumd would stay down")
		}
	}
}

// TestDockerfile checks what docker cannot check here: a static build, a
// non-root user, the data volume, and a HEALTHCHECK that is a valid sumd
// status command, without -auth or -json, so that it checks /healthz when
// /status needs a credential.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{"CGO_ENABLED=0", "USER 65532:65532", "VOLUME /var/lib/sumd", "SUMD_DB=/var/lib/sumd/sumd.db", "FROM gcr.io/distroless/static-debian12:nonroot", "GOTOOLCHAIN=local"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	checkVersionStamp(t, df)
	m := regexp.MustCompile(`(?s)HEALTHCHECK .*?CMD (\[.*?\])\n`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile has no HEALTHCHECK CMD [...]")
	}
	var argv []string
	if err := json.Unmarshal([]byte(m[1]), &argv); err != nil {
		t.Fatalf("HEALTHCHECK CMD %s: %v", m[1], err)
	}
	if len(argv) < 2 || argv[0] != "/usr/local/bin/sumd" || argv[1] != "status" {
		t.Fatalf("HEALTHCHECK runs %q, want sumd status", argv)
	}
	cfg, _, err := config.LoadStatus(argv[2:], nil, io.Discard)
	if err != nil {
		t.Fatalf("HEALTHCHECK's sumd status arguments: %v", err)
	}
	if cfg.Auth != "" || cfg.JSON {
		// The image holds no credential: with -auth or -json, a server
		// with read authentication would be unhealthy; without them,
		// sumd status checks /healthz when /status is refused.
		t.Errorf("HEALTHCHECK's sumd status has -auth or -json: %q", argv)
	}
}

// checkVersionStamp: the image's sumd reports the version it was built as,
// stamped as make build does (-X main.buildVersion), from a VERSION build
// argument that the header's docker build passes; not always "devel".
func checkVersionStamp(t *testing.T, df string) {
	t.Helper()
	mainGo, err := os.ReadFile("../cmd/sumd/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mainGo, []byte("\nvar buildVersion string\n")) {
		t.Fatal("cmd/sumd/main.go has no var buildVersion string for -X main.buildVersion to set")
	}
	build := regexp.MustCompile(`(?s)FROM \S+ AS build\n(.*?)\nRUN go build ([^\n]*)`).FindStringSubmatch(df)
	if build == nil {
		t.Fatal("Dockerfile has no build stage running go build")
	}
	if !regexp.MustCompile(`(?m)^ARG VERSION=devel$`).MatchString(build[1]) {
		t.Error("Dockerfile's build stage lacks ARG VERSION=devel before go build")
	}
	if !regexp.MustCompile(`-ldflags="[^"]*-X main\.buildVersion=\$\{VERSION\}[^"]*"`).MatchString(build[2]) {
		t.Errorf("Dockerfile's go build does not stamp -X main.buildVersion=${VERSION}: %s", build[2])
	}
	if !strings.Contains(df, "#   docker build --build-arg VERSION=$(git describe --tags --always) ") {
		t.Error("Dockerfile's header builds without --build-arg VERSION=$(git describe --tags --always)")
	}
}

// TestAlertRules runs promtool over prometheus/sumd-alerts.yml: the rules
// parse, and its unit tests (sumd-alerts-test.yml) raise each alert on the
// series that should raise it and nothing on a healthy server's.
func TestAlertRules(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "sumd-alerts.yml"}, {"test", "rules", "sumd-alerts-test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertMetricsDefined: every sumd metric the alerting rules name is
// one sumd defines, so that renaming a metric breaks this test rather than
// silently disarming an alert (a rule over a series that never exists
// never fires, and promtool cannot know).
func TestAlertMetricsDefined(t *testing.T) {
	rules, err := os.ReadFile("prometheus/sumd-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	defined := definedMetrics(t)
	used := regexp.MustCompile(`\bsumd_[a-z0-9_]+\b`).FindAllString(string(rules), -1)
	if len(used) < 10 {
		t.Fatalf("the rules name only %d sumd metrics", len(used))
	}
	for _, name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && defined[b] {
				base = b
			}
		}
		if !defined[base] {
			t.Errorf("the alerting rules name %s, which sumd does not define", name)
		}
	}
	for _, name := range []string{"sumd_log_tree_size", "sumd_health_state", "sumd_http_requests_total", "sumd_postgres_up"} {
		if !defined[name] {
			t.Errorf("definedMetrics misses %s: it no longer reads how metrics are defined", name)
		}
	}
	// The metrics of another collector the rules use (a restart's gauges
	// at 0 are not stale, restarts, open files): the process collector
	// sumd registers.
	process := slices.Compact(slices.Sorted(slices.Values(regexp.MustCompile(`\bprocess_[a-z_]+\b`).FindAllString(string(rules), -1))))
	if !slices.Contains(process, "process_start_time_seconds") {
		t.Fatal("the rules no longer use process_start_time_seconds: update this test")
	}
	families, err := serve.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range process {
		if !slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == name }) {
			t.Errorf("sumd's registry has no %s, which the rules use", name)
		}
	}
}

// definedMetrics reads the metric names sumd's code defines: the
// prometheus.*Opts literals (Namespace_Subsystem_Name) and the string
// literals given to prometheus.NewDesc.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	isProm := func(e ast.Expr, suffix string) bool {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		x, ok := sel.X.(*ast.Ident)
		return ok && x.Name == "prometheus" && strings.HasSuffix(sel.Sel.Name, suffix)
	}
	str := func(e ast.Expr) string {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			return s
		}
		return ""
	}
	fset := token.NewFileSet()
	for _, root := range []string{"../internal", "../cmd"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			// A helper that builds descriptions from a prefix, d :=
			// func(name, …) *prometheus.Desc { return
			// prometheus.NewDesc("sumd_postgres_"+name, …) }, defines
			// prefix+name for each d("name", …) of the file.
			prefixed := map[string]string{}
			ast.Inspect(f, func(n ast.Node) bool {
				as, ok := n.(*ast.AssignStmt)
				if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
					return true
				}
				v, ok1 := as.Lhs[0].(*ast.Ident)
				fn, ok2 := as.Rhs[0].(*ast.FuncLit)
				if !ok1 || !ok2 {
					return true
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if c, ok := n.(*ast.CallExpr); ok && isProm(c.Fun, "NewDesc") && len(c.Args) > 0 {
						if b, ok := c.Args[0].(*ast.BinaryExpr); ok && b.Op == token.ADD && str(b.X) != "" {
							prefixed[v.Name] = str(b.X)
						}
					}
					return true
				})
				return true
			})
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CompositeLit:
					if !isProm(n.Type, "Opts") {
						break
					}
					parts := map[string]string{}
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok {
								parts[k.Name] = str(kv.Value)
							}
						}
					}
					var full []string
					for _, k := range []string{"Namespace", "Subsystem", "Name"} {
						if parts[k] != "" {
							full = append(full, parts[k])
						}
					}
					names[strings.Join(full, "_")] = true
				case *ast.CallExpr:
					if isProm(n.Fun, "NewDesc") && len(n.Args) > 0 && str(n.Args[0]) != "" {
						names[str(n.Args[0])] = true
					}
					if fn, ok := n.Fun.(*ast.Ident); ok && prefixed[fn.Name] != "" && len(n.Args) > 0 && str(n.Args[0]) != "" {
						names[prefixed[fn.Name]+str(n.Args[0])] = true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}
