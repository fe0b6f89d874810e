package config

import (
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sumd-project/sumd/internal/secret"
)

// A value is the flag.Value of an option: the flag package's own for the
// option's type (or a listValue), whose errors it replaces by one saying
// what the option wants. The flag, the variable and the file key all set
// the option through it, so a bad value gets the same explanation from
// every layer, where the flag package would say only "parse error".
type value struct {
	flag.Getter
	name, help string
	arg        string // the option's placeholder in the usage text, such as MIB
	// secret marks an option naming a secret's file (secret:"true"), where
	// an operator may paste the secret itself: its values are never
	// repeated, as internal/secret does not repeat a missing file's name.
	secret bool
	given  []string // the values the current layer set, in order
	layer  layer    // the layer being loaded
	src    layer    // the layer that set the value, fromDefault if none
}

// A layer is where a value came from.
type layer struct {
	kind layerKind
	file string // the config file, for fromFile
	line int    // the line of the file that set the option, if known
	key  string // the file key that set it: another's (command.fallbacks), or its own
}

type layerKind int

const (
	fromDefault layerKind = iota
	fromFile
	fromEnv
	fromFlag
)

// describe names the layer that set the option called name, for errors.
func (l layer) describe(name string) string {
	switch l.kind {
	case fromFile:
		if l.line > 0 {
			return fmt.Sprintf("the config file %s:%d", l.file, l.line)
		}
		return "the config file " + l.file
	case fromEnv:
		return envName(name)
	case fromFlag:
		return "-" + name
	}
	return "its default"
}

// isSet reports whether the option has a value other than its default.
func (v *value) isSet(def string) bool { return v.src.kind != fromDefault && v.String() != def }

// reset gives the option its default back.
func (v *value) reset(def string) {
	if l, ok := v.Getter.(*listValue); ok {
		l.fresh = true
	}
	v.Getter.Set(def) // the default parsed once already
	v.src = layer{}
}

func (v *value) Set(s string) error {
	if err := v.Getter.Set(s); err != nil {
		return fmt.Errorf("want %s", v.want(s))
	}
	v.given = append(v.given, s)
	v.src = v.layer
	return nil
}

// checkRepeat refuses an option other than a list given twice on the
// command line: keeping the last would hide a mistake (-mirror a.db
// -mirror b.db serving only b.db), and the file and the environment cannot
// repeat a key.
func (v *value) checkRepeat() error {
	if _, list := v.Getter.(*listValue); list || len(v.given) < 2 {
		return nil
	}
	takes := "one value"
	if strings.Contains(v.help, "comma-separated") {
		takes = "one comma-separated list, such as -" + v.name + " a,b"
	}
	if !v.shows(v.given[0], v.given[1]) {
		return fmt.Errorf("-%s given twice (%s): it takes %s", v.name, notRepeated, takes)
	}
	return fmt.Errorf("-%s given twice (%q, then %q): it takes %s", v.name, redactValue(v.given[0]), redactValue(v.given[1]), takes)
}

// notRepeated stands in messages for the values shows refuses.
const notRepeated = "values not repeated, in case one is the secret itself"

// shows reports whether a message may quote the values vals of the option:
// a secret option's only if each item names a file as a path does
// (secret.PathLike: keys/a.key, bearer:/etc/sumd/token.txt), the way
// internal/secret repeats a missing file's name.
func (v *value) shows(vals ...string) bool {
	if !v.secret {
		return true
	}
	for _, s := range vals {
		for item := range strings.SplitSeq(s, ",") {
			if !secret.PathLike(item) {
				return false
			}
		}
	}
	return true
}

// passwordKV matches the password of a key/value connection string
// (host=db password=secret dbname=sumd), quoted or not.
var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// redactValue returns s, a value an error quotes, without the password of
// a URL (postgres://user:PASSWORD@host, ?password=) or of a key/value
// connection string, as sumd's messages name databases (docs/ha.md).
func redactValue(s string) string {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "(a URL that does not parse)"
		}
		// sslpassword decrypts the client key (sslkey): a secret too.
		if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
			for _, k := range []string{"password", "sslpassword"} {
				if q.Has(k) {
					q.Set(k, "xxxxx")
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return passwordKV.ReplaceAllString(s, "${1}xxxxx")
}

// IsBoolFlag tells the flag package that a bool option needs no value.
func (v *value) IsBoolFlag() bool {
	b, ok := v.Getter.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// want says what the option wants instead of s.
func (v *value) want(s string) string {
	switch v.Get().(type) {
	case bool:
		return "true or false"
	case int:
		if v.arg == "MIB" {
			return "a whole number of MiB such as 64, without a unit (1024 for 1 GiB)"
		}
		return "an integer, written in decimal"
	case time.Duration:
		// Go durations stop at hours; operators think of days.
		if days, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && strings.HasSuffix(s, "d") {
			return fmt.Sprintf(`a duration in hours or less, such as "%dh" for %s (Go durations have no unit d)`, days*24, s)
		}
		return `a duration such as "10s" or "1m30s"`
	}
	return "another value"
}

// An intValue is an int option, read in decimal only. The flag package's
// own reads base prefixes: a zero-padded 0100 became octal 64 (the MiB of
// -cache-size or -min-free-disk), from every layer and without a word.
type intValue struct{ p *int }

var _ flag.Getter = (*intValue)(nil)

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return "0" // the flag package calls String on a zero value
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Get() any { return *v.p }

// set sets f from a file or the environment, explaining a bad value as
// the flag package does for a flag.
func set(f *flag.Flag, s string) error {
	if err := f.Value.Set(s); err != nil {
		return fmt.Errorf("invalid value %q: %w", redactValue(s), err)
	}
	return nil
}
