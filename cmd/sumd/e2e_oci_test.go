package main

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// cosignModules are the cosign command lines the end-to-end test signs
// with: the last cosign v2, whose `sign --key` writes a simple-signing
// signature at sha256-<hex>.sig, and cosign v3, which writes a Sigstore
// bundle as an OCI referrer (or under the sha256-<hex> fallback tag).
var cosignModules = map[string]string{
	"v2": "github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5",
	"v3": "github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3",
}

// cosignCLI returns the cosign command line of version v, built once per
// machine into the test command cache (testenv.GoInstall): the first build
// takes minutes, later runs reuse it.
func cosignCLI(t *testing.T, v string) string {
	t.Helper()
	return testenv.GoInstall(t, cosignModules[v], cosignBuildTimeout)
}

// cosignBuildTimeout bounds one cold build of a cosign CLI: about 6
// minutes on an idle 2-core machine with an empty build cache (5 without
// optimization, as testenv builds it), and over 15 minutes (v3, modules
// downloaded too) at a load average of 17, and over 40 minutes (both
// builds at once, cold build cache) at a load average of 20; make test's
// go test -timeout (75m) leaves room for it and stays under CI's 90.
const cosignBuildTimeout = 60 * time.Minute

// startCosignBuilds starts building the cosign CLIs in the background if
// TestCosignCLI will run, so that a cold build overlaps with the tests
// before it.
func startCosignBuilds() {
	run := flag.Lookup("test.run").Value.String()
	if testing.Short() || run != "" && !matchesTest(run, "TestCosignCLI") {
		return
	}
	for _, pkg := range cosignModules {
		testenv.StartInstall(pkg, cosignBuildTimeout)
	}
}

// matchesTest reports whether the -run pattern run selects the top-level
// test name, as go test matches its first element.
func matchesTest(run, name string) bool {
	first, _, _ := strings.Cut(run, "/")
	re, err := regexp.Compile(first)
	return err != nil || re.MatchString(name)
}

// runCosign runs the cosign command line bin in dir with the test's password
// and cosignEnv, offline.
func runCosign(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = cosignEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cosignEnv is the environment cosign runs in, built from nothing so that
// no setting of the developer's (a Docker config and its credential
// helpers, COSIGN_* and SIGSTORE_* variables, proxies, XDG directories)
// changes what it does: PATH, the test's password, and an empty HOME,
// TUF_ROOT and TMPDIR of the test's. The registry is plain HTTP on
// 127.0.0.1 and signing is offline, so cosign needs nothing else.
func cosignEnv(t *testing.T) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"TUF_ROOT=" + t.TempDir(),
		"TMPDIR=" + t.TempDir(),
		"COSIGN_PASSWORD=" + cosignPassword,
	}
}

// TestCosignEnv checks that what a developer's environment sets for cosign
// or its registry client (a Docker config with credential helpers, Sigstore
// and cosign settings, proxies, TMPDIR's neighbours) never reaches the
// cosign that TestCosignCLI runs, so it signs the same way on every machine.
func TestCosignEnv(t *testing.T) {
	for _, kv := range []string{
		"DOCKER_CONFIG=/nonexistent/docker", "REGISTRY_AUTH_FILE=/nonexistent/auth.json",
		"COSIGN_REPOSITORY=elsewhere.example/sigs", "COSIGN_EXPERIMENTAL=1", "COSIGN_KEY=/nonexistent/cosign.key",
		"SIGSTORE_REKOR_PUBLIC_KEY=/nonexistent/rekor.pub", "SIGSTORE_ID_TOKEN=x", "TUF_MIRROR=https://tuf.example",
		"HTTPS_PROXY=http://proxy.example:3128", "http_proxy=http://proxy.example:3128", "NO_PROXY=*",
		"SSL_CERT_FILE=/nonexistent/ca.pem", "XDG_CONFIG_HOME=/nonexistent/config", "XDG_CACHE_HOME=/nonexistent/cache",
	} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	seen := map[string]string{}
	for _, kv := range cosignEnv(t) {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := seen[k]; dup {
			t.Errorf("cosign's environment sets %s twice", k)
		}
		seen[k] = v
		switch k {
		case "PATH", "HOME", "TUF_ROOT", "TMPDIR", "COSIGN_PASSWORD":
		default:
			t.Errorf("cosign's environment has %s, from the developer's environment", kv)
		}
	}
	for _, k := range []string{"HOME", "TUF_ROOT", "TMPDIR"} {
		if d := seen[k]; !strings.HasPrefix(d, os.TempDir()) || d == os.TempDir() {
			t.Errorf("cosign's %s=%q, want a directory of the test's", k, d)
		}
	}
	if seen["COSIGN_PASSWORD"] != cosignPassword {
		t.Errorf("cosign's COSIGN_PASSWORD=%q, want the test's", seen["COSIGN_PASSWORD"])
	}
}

// TestCosignCLI is the proof that sumd accepts what the real cosign
// signs: keys from `cosign generate-key-pair`, an artifact pushed by sumd
// oci push and signed by `cosign sign --key` of cosign v2 and v3 (with and
// without the registry's referrers API), recorded by sumd sync, served by
// sumd serve and verified by the go command; a version left unsigned is
// not recorded, and the go command refuses it.
func TestCosignCLI(t *testing.T) {
	testenv.SkipShort(t, "builds the cosign v2 and v3 command lines (minutes the first time)")
	for _, tc := range []struct {
		name, version string
		referrers     bool
		format        string
	}{
		{"v2", "v2", false, "cosign"},
		{"v3-referrers-api", "v3", true, "bundle"},
		{"v3-fallback-tag", "v3", false, "bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each has its own registry, keys, log and server
			bin := cosignCLI(t, tc.version)
			signed, unsigned := ociModule("example.com/cosigned", "v1.0.0", tc.name), ociModule("example.com/cosigned", "v1.0.1", tc.name)
			e := newOCIEnv(t, tc.referrers, signed, unsigned)
			keyDir := t.TempDir()
			runCosign(t, bin, keyDir, "generate-key-pair")
			e.priv, e.pub = filepath.Join(keyDir, "cosign.key"), filepath.Join(keyDir, "cosign.pub")

			// Signed with the command sumd oci push prints, as a user
			// would: offline, with nothing sent to a transparency log.
			ref, out := e.pushOut(t, signed, false)
			hint := regexp.MustCompile(`(?m)^unsigned: .*, e\.g\. cosign (sign --key cosign\.key .* \S+@sha256:\S+) \(cosign v3: add (\S+)\)$`).FindStringSubmatch(out)
			if hint == nil || !strings.Contains(hint[1], ref) {
				t.Fatalf("sumd oci push of an unsigned version printed:\n%s\nwant a cosign sign command for %s", out, ref)
			}
			sign := strings.Fields(strings.Replace(hint[1], "cosign.key", e.priv, 1))
			if tc.version == "v3" {
				sign = append(sign[:len(sign)-1], hint[2], sign[len(sign)-1])
			}
			runCosign(t, bin, keyDir, sign...)
			e.push(t, unsigned, false)

			out, errOut, code := e.sync(t)
			if code != 0 || !strings.Contains(out, "1 recorded, 1 unsigned") || !strings.Contains(errOut, "signature="+tc.format) {
				t.Fatalf("sumd sync: exit %d, want 1 recorded (%s signature) and 1 unsigned\n%s%s", code, tc.format, out, errOut)
			}

			s := startServer(t, "-db", e.db, "-key", e.key)
			g := testproxy.NewGo(t)
			g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+s.gosumdb)
			download(t, g, signed)
			if out, err := g.Run("mod", "download", args(unsigned)[0]); err == nil || !strings.Contains(out, "not found: example.com/cosigned@v1.0.1") {
				t.Errorf("go mod download of the unsigned version: %v\n%s\nwant sumd's 404", err, out)
			}
		})
	}
}
