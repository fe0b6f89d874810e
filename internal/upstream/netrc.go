package upstream

import (
	"net/url"
	"strings"
)

// A netrcEntry is one "machine" block of a .netrc file with both a login and
// a password; blocks lacking either are useless for basic auth and dropped,
// as the go command drops them.
type netrcEntry struct {
	machine, login, password string
}

// parseNetrc parses a .netrc file the way the go command does
// (cmd/go/internal/auth/netrc.go), which is the GNU inetutils format:
// whitespace-separated tokens, "machine NAME" starting a block that
// "login" and "password" fill, "account" ignored, "macdef NAME" starting a
// macro whose body runs to the next empty line. Parsing stops at "default",
// which must come last and which the go command ignores: sumd sends
// credentials only to hosts named in the file.
//
// Unlike the go command's parser, a keyword and its value may be on
// different lines, as the format allows; but a keyword is never taken as
// a value, so a value missing at the end of a line leaves its block
// incomplete (and dropped) rather than taking the next block's keyword and
// then its credentials. As in the go command's parser, a block is kept as
// soon as it is complete, and values that follow it without a "machine"
// go nowhere. The input is untrusted-ish (a file the operator points at),
// so the parser never fails: it returns what it understood.
func parseNetrc(data string) []netrcEntry {
	var p netrcParser
	for line := range strings.SplitSeq(data, "\n") {
		if p.inMacro {
			p.inMacro = strings.TrimRight(line, "\r") != ""
			continue
		}
		for tok := range strings.FieldsSeq(line) {
			if !p.token(tok) {
				return p.done()
			}
			if p.macro {
				break // the rest of a "macdef NAME" line is not tokens
			}
		}
		if p.macro || p.key == "macdef" {
			p.macro, p.key, p.inMacro = false, "", true
		}
	}
	return p.done()
}

type netrcParser struct {
	entries []netrcEntry
	cur     netrcEntry
	key     string // the keyword waiting for its value, or ""
	macro   bool   // "macdef NAME" seen on this line
	inMacro bool   // skipping a macro body, up to an empty line
}

// token consumes one token; it returns false at "default", where parsing
// stops.
func (p *netrcParser) token(tok string) bool {
	switch tok {
	case "default":
		return false
	case "machine", "login", "password", "account", "macdef":
		// A keyword, never a value: one waiting for its value gets none.
		if tok == "machine" || p.key == "machine" {
			p.cur = netrcEntry{} // a new block, or one with no name
		}
		p.key = tok
		return true
	}
	key := p.key
	p.key = ""
	switch key {
	case "machine":
		p.cur = netrcEntry{machine: tok}
	case "login":
		p.cur.login = tok
	case "password":
		p.cur.password = tok
	case "macdef":
		p.macro = true
	}
	if p.cur.machine != "" && p.cur.login != "" && p.cur.password != "" {
		p.entries = append(p.entries, p.cur)
		p.cur = netrcEntry{}
	}
	return true
}

func (p *netrcParser) done() []netrcEntry { return p.entries }

// lookupNetrc returns the credentials for u: the first block naming u's
// host and port exactly, else the first naming its host name alone, which
// is what the go command matches.
func lookupNetrc(entries []netrcEntry, u *url.URL) (netrcEntry, bool) {
	for _, host := range []string{u.Host, u.Hostname()} {
		for _, e := range entries {
			if e.machine == host {
				return e, true
			}
		}
	}
	return netrcEntry{}, false
}
