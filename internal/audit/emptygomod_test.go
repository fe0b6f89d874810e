package audit

import (
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestEmptyGoModLine: a go.sum file with an old go command's empty-go.mod
// line beside the version's real lines (which the go command, and sumd add
// -gosum, drop) verifies clean against the database; alone, it leaves its
// version with one line, as in sumd add -gosum.
func TestEmptyGoModLine(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	r1 := testRecord(1)
	text := goSumOf(0, 1) + r1.Path + " " + r1.Version + "/go.mod " + gosum.EmptyGoModHash + "\n"
	file := writeGoSum(t, text)
	rep, err := audit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Errorf("a line the go command ignores is reported: %s", problems(rep))
	}
}

// TestEmptyGoModLineUnchecked: the go command drops a line with the hash
// of an empty go.mod file before it reads its path and version
// (readGoSum), so one it would refuse (a non-canonical version, a path
// without a dot) is dropped as well, not reported as a malformed line.
func TestEmptyGoModLineUnchecked(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	text := goSumOf(0, 1) +
		"example.com/a v1.0/go.mod " + gosum.EmptyGoModHash + "\n" +
		"nodot/a v1.0.0/go.mod " + gosum.EmptyGoModHash + "\n"
	file := writeGoSum(t, text)
	rep, err := audit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Errorf("a line the go command drops unread is reported: %s", problems(rep))
	}
}
