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

func (c *Add) exclusive() [][2][]string { return [][2][]string{{{"token-file"}, {"auth"}}} }

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
