package modhash

import (
	"fmt"
	"strings"
)

// Caps of HashZip's error text: x/mod's CheckZip names every bad entry, one
// a line, so a crafted zip of thousands of them makes megabytes of text
// (hundreds at MaxZipFile) that no answer, cache or log line should carry.
const (
	MaxReasonText = 1 << 10 // what a client reads, or a negative cache keeps
	MaxCauseText  = 8 << 10 // what the server's log keeps
)

// Reason is err, an error of HashZip, as one line of at most n bytes (and
// the note of what was cut): a list of reasons is joined with "; ", and
// zipPath, a temporary file the client never saw, is named as name.
func Reason(err error, zipPath, name string, n int) string {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	if zipPath != "" {
		msg = strings.ReplaceAll(msg, zipPath, name)
	}
	return Truncate(msg, n)
}

// Truncate cuts s to at most n bytes, saying how much it left out.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + fmt.Sprintf("… (%d more bytes)", len(s)-n)
}
