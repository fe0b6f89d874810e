package tlog

import (
	"log/slog"
	"strings"
	"testing"
)

// TestCreatedLevel: a new signing log is a warning (a new log where one
// was expected is how a lost database shows), a new mirror only
// information: it signs nothing, and sumd restore makes one as scratch,
// removed again when its -from URL gives nothing, so a warning told of a
// file already gone.
func TestCreatedLevel(t *testing.T) {
	k := testKey(t, "sum.example.com")
	for _, tc := range []struct {
		name  string
		opts  Options
		level string
	}{
		{"signing", Options{Keys: []*Key{k}}, "level=WARN"},
		{"mirror", Options{VerifierKeys: []string{k.VerifierKey()}}, "level=INFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf strings.Builder
			tc.opts.Create = true
			tc.opts.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			l, err := OpenStore(NewMemStore(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			line := ""
			for _, ln := range strings.Split(buf.String(), "\n") {
				if strings.Contains(ln, "created a new checksum database") {
					line = ln
				}
			}
			if !strings.Contains(line, tc.level) {
				t.Errorf("creating a %s log logged %q, want it at %s\n%s", tc.name, line, tc.level, buf.String())
			}
		})
	}
}
