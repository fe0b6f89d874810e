package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoSilentSkips keeps every test of the module honest in CI: a test may
// skip itself only through this package (Need, LookPath and SkipShort,
// which fail in CI instead), or as a child process helper that runs only
// when its parent sets a variable (if os.Getenv(…) == "", the variable set
// by a "NAME=" string of the same package; not CI, and not one a developer
// opts in with, which CI never sets). A -short skip
// of its own (if testing.Short(), with t.Skip or a bare return) would pass
// in a CI run given -short.
// Anything else, such as t.Skip after a failed exec.LookPath, or
// testscript's skip in a script, would let CI print ok for a test that
// never ran.
func TestNoSilentSkips(t *testing.T) {
	root := filepath.Join("..", "..")
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	dirs := map[string][]*ast.File{} // a package's files: one sets the variables guarding another's child tests
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if abs, _ := filepath.Abs(path); d.IsDir() || !strings.HasSuffix(path, ".go") || filepath.Dir(abs) == here {
			return nil // this package is where skipping is decided
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, files := range dirs {
		set := childEnv(files)
		for _, f := range files {
			for _, pos := range silentSkips(f, set) {
				t.Errorf("%s: a test skips itself outside internal/testenv; use testenv.Need, testenv.LookPath or testenv.SkipShort, so that CI fails instead", fset.Position(pos))
			}
		}
	}
	// testscript's scripts (cmd/sumd's TestScript) have a skip command of
	// their own, which passes in CI as t.Skip does.
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".txtar") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range scriptSkips(string(data)) {
			t.Errorf("%s:%d: a script skips itself; fail instead, or check for what it needs in its Go test through internal/testenv", path, line)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scriptSkips returns the numbers of the lines of the testscript script
// that run its skip command, under conditions ([short], [!exec:x]) or not,
// before the files of its archive.
func scriptSkips(script string) []int {
	var found []int
	n := 0
	for line := range strings.Lines(script) {
		n++
		if strings.HasPrefix(line, "-- ") {
			break // the archive's files
		}
		words := strings.Fields(line)
		for len(words) > 0 && strings.HasPrefix(words[0], "[") {
			words = words[1:]
		}
		if len(words) > 0 && words[0] == "skip" {
			found = append(found, n)
		}
	}
	return found
}

// silentSkips returns the positions of the Skip, Skipf and SkipNow calls
// in f that are not guarded by os.Getenv (directly, or through a variable
// assigned from it) of a variable in set, the variables its package sets
// for the child processes it runs, and those of the returns of tests under
// -short. A guard on another variable would skip a test nobody runs (one
// waiting for a developer to opt in), and a guard on CI one that CI never
// runs.
func silentSkips(f *ast.File, set map[string]bool) []token.Pos {
	env := envVars(f, set)
	var found []token.Pos
	var guarded []bool // one entry per enclosing if statement: is it a guard?
	var visit func(n ast.Node) bool
	visit = func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IfStmt:
			guarded = append(guarded, isGuard(n.Cond, env, set))
			ast.Inspect(n.Body, visit)
			guarded = guarded[:len(guarded)-1]
			if n.Else != nil {
				ast.Inspect(n.Else, visit)
			}
			return false
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if ok && (sel.Sel.Name == "Skip" || sel.Sel.Name == "Skipf" || sel.Sel.Name == "SkipNow") && !anyTrue(guarded) {
				found = append(found, n.Pos())
			}
		}
		return true
	}
	ast.Inspect(f, visit)
	return append(found, shortReturns(f)...)
}

// shortReturns returns the positions of the if statements of f that end a
// test under -short without a skip (if testing.Short() { return }): it
// then passes, in CI too, having proved nothing. Only functions given a
// *testing.T, B or F or a testing.TB count: elsewhere (a TestMain's
// setup) -short may well decide what work to start.
func shortReturns(f *ast.File) []token.Pos {
	var found []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		var typ *ast.FuncType
		var body *ast.BlockStmt
		switch n := n.(type) {
		case *ast.FuncDecl:
			typ, body = n.Type, n.Body
		case *ast.FuncLit:
			typ, body = n.Type, n.Body
		}
		if body == nil || !takesTesting(typ) {
			return true
		}
		ast.Inspect(body, func(n ast.Node) bool {
			if _, ok := n.(*ast.FuncLit); ok {
				return false // inspected on its own
			}
			if is, ok := n.(*ast.IfStmt); ok && callsShort(is.Cond) && returns(is.Body) {
				found = append(found, is.Pos())
			}
			return true
		})
		return true
	})
	return found
}

// takesTesting reports whether a function of type typ is given one of
// package testing's test types.
func takesTesting(typ *ast.FuncType) bool {
	for _, p := range typ.Params.List {
		t := p.Type
		if star, ok := t.(*ast.StarExpr); ok {
			t = star.X
		}
		if sel, ok := t.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "testing" && sel.Sel.Name != "M" {
				return true
			}
		}
	}
	return false
}

// callsShort reports whether cond calls testing.Short.
func callsShort(cond ast.Expr) bool {
	found := false
	ast.Inspect(cond, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && isCall(sel, "testing", "Short") {
			found = true
		}
		return !found
	})
	return found
}

// returns reports whether body holds a return statement outside the
// function literals in it.
func returns(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			found = true
		}
		return !found
	})
	return found
}

// isGuard reports whether cond calls os.Getenv on a variable of set, or
// uses one of the Go variables env holds the values of such calls in.
func isGuard(cond ast.Expr, env, set map[string]bool) bool {
	guard := false
	ast.Inspect(cond, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			name, ok := getenv(n)
			guard = guard || ok && set[name]
		case *ast.Ident:
			guard = guard || env[n.Name]
		}
		return !guard
	})
	return guard
}

// getenv returns the name of the variable call reads if it is
// os.Getenv("NAME").
func getenv(call *ast.CallExpr) (string, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !isCall(sel, "os", "Getenv") || len(call.Args) != 1 {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	return name, err == nil
}

// envVars returns the names of the Go variables of f assigned the value of
// an environment variable of set by os.Getenv.
func envVars(f *ast.File, set map[string]bool) map[string]bool {
	vars := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
			call, _ := as.Rhs[0].(*ast.CallExpr)
			id, _ := as.Lhs[0].(*ast.Ident)
			if call == nil || id == nil {
				return true
			}
			if name, ok := getenv(call); ok && set[name] {
				vars[id.Name] = true
			}
		}
		return true
	})
	return vars
}

// childEnv returns the environment variables that files set for a child
// process, as a string beginning "NAME=" (cmd.Env = append(os.Environ(),
// "NAME="+value)), but CI: a child run with CI set is not a reason to skip.
func childEnv(files []*ast.File) map[string]bool {
	set := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, err := strconv.Unquote(lit.Value)
				if name, _, ok := strings.Cut(v, "="); err == nil && ok && name != "" && name != "CI" {
					set[name] = true
				}
			}
			return true
		})
	}
	return set
}

func isCall(sel *ast.SelectorExpr, pkg, name string) bool {
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == pkg && sel.Sel.Name == name
}

func anyTrue(bs []bool) bool {
	for _, b := range bs {
		if b {
			return true
		}
	}
	return false
}

// TestSilentSkips holds silentSkips, which TestNoSilentSkips relies on, to
// finding the skips it is there to find: with none found, that test would
// pass on any tree.
func TestSilentSkips(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"a bare skip", `t.Skip("flaky")`, 1},
		{"every skip method", `t.Skipf("%d", 1); t.SkipNow(); b.Skip()`, 3},
		{"after a failed LookPath", `if _, err := exec.LookPath("strace"); err != nil { t.Skip(err) }`, 1},
		{"under -short", `if testing.Short() { t.Skip("slow") }`, 1},
		{"in the else of a guard", `if os.Getenv("CHILD") != "" { run() } else { t.Skip() }`, 1},
		{"in a closure", `t.Run("x", func(t *testing.T) { t.Skip() })`, 1},
		{"a child guarded by os.Getenv", `if os.Getenv("CHILD") == "" { t.Skip("run by TestParent") }`, 0},
		{"a child guarded by a variable", `dir := os.Getenv("CHILD"); if dir == "" { t.Skip("run by TestParent") }`, 0},
		{"nested in a guard", `if os.Getenv("CHILD") == "" { if x { t.Skip() } }`, 0},
		{"a return under -short", `if testing.Short() { return }`, 1},
		{"a return under -short among other conditions", `if testing.Short() || x { return }`, 1},
		{"a return under -short in a subtest", `t.Run("x", func(t *testing.T) { if testing.Short() { return } })`, 1},
		{"in CI only", `if os.Getenv("CI") != "" { t.Skip("flaky in CI") }`, 1},
		{"unless opted in", `if os.Getenv("SUMD_SLOW") == "" { t.Skip("set SUMD_SLOW to run") }`, 1},
		{"unless opted in, through a variable", `v := os.Getenv("SUMD_SLOW"); if v == "" { t.Skip("set SUMD_SLOW to run") }`, 1},
		{"through testenv", `testenv.SkipShort(t, "slow"); testenv.LookPath(t, "strace")`, 0},
	} {
		// The parent of the child tests sets CHILD, and only it.
		src := "package p\n\nfunc TestX(t *testing.T) {\n" + tc.body + "\n}\n\nvar parentEnv = \"CHILD=1\"\n"
		if tc.want == 0 {
			// Not a test: deciding whether to start work for tests to come
			// (cmd/sumd's startCosignBuilds) under -short is no skip.
			src += "\nfunc setup() {\n if testing.Short() { return }\n}\n"
		}
		f, err := parser.ParseFile(token.NewFileSet(), "x_test.go", src, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := len(silentSkips(f, childEnv([]*ast.File{f}))); got != tc.want {
			t.Errorf("%s: %d silent skips found in %q, want %d", tc.name, got, tc.body, tc.want)
		}
	}
}

// TestScriptSkips holds scriptSkips to finding testscript's skip command,
// bare or under a condition, and nothing else.
func TestScriptSkips(t *testing.T) {
	script := `# skip: a comment is no command
exec sumd version
skip 'flaky'
[short] skip
[!exec:htpasswd] skip 'needs htpasswd'
  [linux]   skip
! exec sumd skip
stdout 'skip'
-- skip --
skip
`
	if got, want := scriptSkips(script), []int{3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("scriptSkips found skips on lines %v, want %v", got, want)
	}
}
