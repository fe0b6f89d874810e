package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// hinted is an error with a hint, as internal/serve's are.
type hinted struct{ msg, hint string }

func (e *hinted) Error() string { return e.msg }
func (e *hinted) Hint() string  { return e.hint }

// TestReportJoined: Run returns a flag or configuration error joined
// (errors.Join) with a failure to close the log; report printed the
// first alone (a *cliError's own error and hint) and of several hints the
// first, so the close failure was never shown. Every joined error is
// printed now, each with its hint, and the exit status is the first's.
func TestReportJoined(t *testing.T) {
	err := errors.Join(
		&cliError{err: errors.New("bad -listen"), hint: "pick a free address", code: 2},
		errors.Join(&hinted{"failed to close the log: disk gone", "check the disk"}, fmt.Errorf("close mirror: %w", errors.New("eio"))),
	)
	var out strings.Builder
	code := report(err, &out)
	want := "sumd: error: bad -listen\nhint: pick a free address\n" +
		"sumd: error: failed to close the log: disk gone\nhint: check the disk\n" +
		"sumd: error: close mirror: eio\n"
	if out.String() != want {
		t.Errorf("report printed\n%s\nwant\n%s", out.String(), want)
	}
	if code != 2 {
		t.Errorf("exit status %d, want 2 (the first error's)", code)
	}
}

// TestReportMultiWrap: fmt.Errorf with several %w has Unwrap() []error, as
// an errors.Join has, but is one error whose text says more than its
// parts: report prints it whole, with its hint, rather than its parts
// alone, which would lose what failed. joined tells them apart by their
// text (a join's is its parts' texts, a line each), as the two types are
// unexported.
func TestReportMultiWrap(t *testing.T) {
	err := fmt.Errorf("failed to open the log: %w: %w", &hinted{"store damaged", "run sumd verify"}, errors.New("eio"))
	var out strings.Builder
	code := report(err, &out)
	want := "sumd: error: failed to open the log: store damaged: eio\nhint: run sumd verify\n"
	if out.String() != want {
		t.Errorf("report printed\n%s\nwant\n%s", out.String(), want)
	}
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}
