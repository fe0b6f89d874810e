package sumdbclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
)

// A LookupAnswer is a lookup's body split into its parts, not verified:
// the record's id, its text, and the signed tree head said to cover it.
type LookupAnswer struct {
	ID     int64
	Record []byte // the two go.sum lines, as hashed into the tree
	Head   []byte // the signed note
}

// Lookup fetches /lookup/M@V and splits the answer. A 404 or 410 (the
// database does not hold the version and would not fetch it) is a
// *FetchError for which NotFound is true.
func (c *Client) Lookup(ctx context.Context, m module.Version) (*LookupAnswer, error) {
	p, err := module.EscapePath(m.Path)
	if err != nil {
		return nil, err
	}
	v, err := module.EscapeVersion(m.Version)
	if err != nil {
		return nil, err
	}
	body, err := c.Get(ctx, "/lookup/"+p+"@"+v, MaxLookup)
	if err != nil {
		return nil, err
	}
	return ParseLookup(body)
}

// ParseLookup splits a lookup answer: "<id>\n<record>\n<signed note>",
// the record parsed by x/mod's tlog.ParseRecord (non-empty text ending in
// a newline with no blank line in it), its id in canonical decimal.
func ParseLookup(body []byte) (*LookupAnswer, error) {
	id, rec, head, err := tlog.ParseRecord(body)
	if err != nil {
		return nil, fmt.Errorf("malformed lookup answer: not a record id line, the record and a blank line: %w", err)
	}
	// ParseRecord takes any id strconv does ("+7", "007", "-1"); the
	// protocol writes it one way.
	if idText, _, _ := bytes.Cut(body, []byte("\n")); id < 0 || strconv.FormatInt(id, 10) != string(idText) {
		return nil, fmt.Errorf("malformed lookup answer: record id %q", printableString(idText))
	}
	if len(head) == 0 {
		return nil, errors.New("malformed lookup answer: no signed tree head")
	}
	return &LookupAnswer{ID: id, Record: bytes.Clone(rec), Head: bytes.Clone(head)}, nil
}

func printableString(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(bytes.Map(printable, b))
}
