package config

import (
	"fmt"
	"strings"
)

// Some commands take one of two sets of options: sumd backup copies from
// -server or from -db, sumd verify learns the keys from -key or through
// -tuf-root and -tuf-url. The environment and a shared config file may set
// the other set for another command (the Dockerfile sets SUMD_DB, for
// serve), so a set given on the command line wins: the other's values from
// the lower layers are dropped. When neither or both sets come from flags,
// the command's Validate refuses the pair, and resolveExclusive's errors
// say which layer set each option and how to clear it.

func (c *Backup) exclusive() [][2][]string {
	return [][2][]string{{{"server"}, {"db"}}, {{"token-file"}, {"auth"}}}
}

func (c *Add) exclusive() [][2][]string {
	return [][2][]string{{{"token-file"}, {"auth"}}, {{"server"}, addLocal}}
}

// sumd add works in one of two places, and on a module version or on
// go.sum files: an option of one mode given on the command line in the
// other is refused rather than ignored (-auth without -server recorded in
// the database file). What the environment or a config file sets for
// another command is ignored, as the other set of an exclusive pair is.
var addLocal = []string{"db", "key", "name", "create", "min-free-disk"}

func (c *Add) modes() []mode {
	return []mode{
		{addLocal, "server", false, "adding to the database file; with -server, the server adds to its own", nil},
		{[]string{"token-file", "auth", "client-cert", "client-key", "insecure-http"}, "server", true, "adding through a running sumd", nil},
		{[]string{"upstream", "upstream-auth", "strict", "tmp-dir"}, "gosum", true, "adding go.sum files", nil},
	}
}

// A mode is a set of options that work only with another option set
// (with) or unset (!with): what describes the mode. A mode that depends on
// an option's value, not on its being set, has on, which says whether it
// is in force, and by then names what decides it ("from URL").
type mode struct {
	opts []string
	by   string
	with bool
	what string
	on   func() bool
}

// checkModes refuses the options given as flags outside their mode.
func checkModes(opts []option, modes []mode) []error {
	byName := map[string]option{}
	for _, o := range opts {
		byName[o.Name] = o
	}
	isSet := func(name string) bool {
		o := byName[name]
		return o.Value.(*value).isSet(o.DefValue)
	}
	var errs []error
	for _, m := range modes {
		if m.on != nil && m.on() == m.with || m.on == nil && isSet(m.by) == m.with {
			continue
		}
		for _, name := range m.opts {
			if o := byName[name]; !isSet(name) || o.Value.(*value).src.kind != fromFlag {
				continue
			}
			if m.with {
				errs = append(errs, fmt.Errorf("-%s needs -%s: it is an option of %s", name, m.by, m.what))
			} else {
				errs = append(errs, fmt.Errorf("-%s does not go with -%s: it is an option of %s", name, m.by, m.what))
			}
		}
	}
	return errs
}

func (c *Verify) exclusive() [][2][]string {
	return [][2][]string{{{"key"}, {"tuf-root", "tuf-url"}}}
}

func (c *Key) exclusive() [][2][]string { return [][2][]string{{{"new-key"}, {"retire"}}} }

// resolveExclusive drops, of each pair of option sets, the values that a
// lower layer gave the set the command line did not name. It returns, for
// the pairs both of whose sets are still set, a detail line naming where
// each value came from, to follow Validate's error.
func resolveExclusive(opts []option, pairs [][2][]string) []error {
	byName := map[string]option{}
	for _, o := range opts {
		byName[o.Name] = o
	}
	// set returns the options of names that have a value, and whether a
	// flag gave any of them.
	set := func(names []string) (set []option, flag bool) {
		for _, name := range names {
			o := byName[name]
			if v := o.Value.(*value); v.isSet(o.DefValue) {
				set = append(set, o)
				flag = flag || v.src.kind == fromFlag
			}
		}
		return set, flag
	}
	var details []error
	for _, p := range pairs {
		a, aFlag := set(p[0])
		b, bFlag := set(p[1])
		switch {
		case len(a) == 0 || len(b) == 0:
		case aFlag && !bFlag:
			resetAll(b)
		case bFlag && !aFlag:
			resetAll(a)
		default:
			var from, clear []string
			for i, o := range append(a, b...) {
				by := " by "
				if i == 0 {
					by = " is set by "
				}
				from = append(from, o.Name+by+o.Value.(*value).src.describe(o.Name))
				clear = append(clear, "-"+o.Name+"=")
			}
			details = append(details, fmt.Errorf("\t%s: to drop one, pass its flag empty (%s)", strings.Join(from, ", "), strings.Join(clear, " or ")))
		}
	}
	return details
}

func resetAll(opts []option) {
	for _, o := range opts {
		o.Value.(*value).reset(o.DefValue)
	}
}

// A need is a set of options that do something only with another option
// on (by). Set while by was left unset by every layer, they are refused:
// whoever wrote crosscheck-url but not crosscheck believed public modules
// were cross-checked, and sumd recorded them unchecked. by set false, by
// any layer, keeps them unused on purpose (the cross-check turned off
// during an outage of the upstream checksum database).
type need struct {
	opts []string
	by   string
	off  string // what happens without by
}

var crosscheckNeeds = []need{{
	[]string{"private", "crosscheck-key", "crosscheck-url", "crosscheck-fail-open", "crosscheck-state"},
	"crosscheck", "public modules are recorded without the cross-check",
}}

func (c *Serve) needs() []need { return crosscheckNeeds }
func (c *Sync) needs() []need  { return crosscheckNeeds }

// checkNeeds refuses the options set while the option they need was never
// set.
func checkNeeds(opts []option, needs []need) []error {
	byName := map[string]option{}
	for _, o := range opts {
		byName[o.Name] = o
	}
	var errs []error
	for _, n := range needs {
		if byName[n.by].Value.(*value).src.kind != fromDefault {
			continue
		}
		for _, name := range n.opts {
			if o := byName[name]; o.Value.(*value).isSet(o.DefValue) {
				errs = append(errs, fmt.Errorf("%s is set, but %s is not: %s; set %s: true (-%s), or %s: false to leave %s unused",
					name, n.by, n.off, n.by, n.by, n.by, name))
			}
		}
	}
	return errs
}
