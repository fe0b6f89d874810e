package config

import (
	"flag"
	"strings"
)

// A listValue binds a []string option, for options that take several
// values (-registry A -registry B). Every layer accepts a list: repeat
// the flag, write SUMD_REGISTRY=A,B, or give the YAML key a list (or one
// comma-separated string); items are trimmed and empty ones dropped, so an
// item cannot hold a comma.
//
// A layer replaces the list an earlier layer set rather than adding to it,
// so that flags still win over the environment and the file as a whole:
// each new layer marks the value fresh (newLayer), and its first Set starts
// a new list.
type listValue struct {
	p     *[]string
	fresh bool // the next Set replaces the list
}

var _ flag.Getter = (*listValue)(nil)

func (v *listValue) Set(s string) error {
	if v.fresh {
		*v.p, v.fresh = nil, false
	}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v.p = append(*v.p, item)
		}
	}
	return nil
}

func (v *listValue) String() string {
	if v == nil || v.p == nil {
		return "" // the flag package calls String on a zero value
	}
	return strings.Join(*v.p, ",")
}

func (v *listValue) Get() any { return *v.p }

// newLayer starts a new layer of configuration for every option.
func newLayer(opts []option, l layer) {
	for _, o := range opts {
		v := o.Value.(*value)
		v.given, v.layer = nil, l
		if l, ok := v.Getter.(*listValue); ok {
			l.fresh = true
		}
	}
}

func isList(f *flag.Flag) bool {
	_, ok := f.Value.(*value).Getter.(*listValue)
	return ok
}

// setList sets a list option from the items of a YAML list.
func setList(f *flag.Flag, items []string) error {
	f.Value.Set("") // an empty list is a list too: it replaces the earlier layers'
	for _, it := range items {
		if err := f.Value.Set(it); err != nil {
			return err
		}
	}
	return nil
}
