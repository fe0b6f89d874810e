package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// maxConfigFile caps the YAML file: real ones are a few KiB, and the parser
// should not be handed whatever a mistyped -config names.
const maxConfigFile = 1 << 20

// An entry is a key of the config file and its value as parsed, not yet
// converted: a yaml.Node keeps the scalar's text as written, where decoding
// into Go values would turn 1.10 into 1.1 and 0123 into 83 before sumd saw
// them.
type entry struct {
	key   string // nested maps are flattened: log: {level: x} is "log.level"
	line  int    // the key's line, for errors
	value *yaml.Node
}

// at is where e is, for errors: "config file sumd.yaml:3".
func (e entry) at(path string) string { return fmt.Sprintf("config file %s:%d", path, e.line) }

// readFile parses the YAML file at path into its entries, in file order.
func readFile(path string) ([]entry, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxConfigFile {
		return nil, fmt.Errorf("config file %s is larger than %d bytes", path, maxConfigFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to load config file %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("failed to load config file %s: %w", path, err)
	}
	doc, err := oneDocument(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty, or only comments
	}
	root := deref(doc.Content[0])
	switch {
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return nil, nil
	case root.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("failed to load config file %s: want a map of option: value lines", path)
	}
	var entries []entry
	if e, err := flatten("", root, &entries, map[*yaml.Node]bool{}); err != nil {
		return nil, fmt.Errorf("%s: %w", e.at(path), err)
	}
	return entries, nil
}

// oneDocument parses data, which must hold one YAML document: yaml.Unmarshal
// reads the first alone, so the options after a "---" or "..." separator
// were ignored without a word. An empty document after it loses nothing.
func oneDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, err
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if err == io.EOF {
			return &doc, nil
		}
		if err != nil {
			return nil, err
		}
		if n := next.Content; len(n) > 0 && !(n[0].Kind == yaml.ScalarNode && n[0].Tag == "!!null") {
			return nil, fmt.Errorf("a second YAML document starts at line %d (after --- or ...), whose options would be ignored: keep them all in one YAML document, a map of option: value lines", n[0].Line)
		}
	}
}

// flatten appends the entries of the mapping m to entries, prefixing the
// keys. seen guards against an alias of a map that holds it. An error
// comes with the entry it is about.
func flatten(prefix string, m *yaml.Node, entries *[]entry, seen map[*yaml.Node]bool) (entry, error) {
	if seen[m] {
		return entry{key: prefix, line: m.Line}, errors.New("a map refers to itself")
	}
	seen[m] = true
	defer delete(seen, m)
	for i := 0; i+1 < len(m.Content); i += 2 {
		e := entry{prefix + m.Content[i].Value, m.Content[i].Line, deref(m.Content[i+1])}
		if slices.ContainsFunc(*entries, func(d entry) bool { return d.key == e.key }) {
			return e, fmt.Errorf("key %q given twice", e.key)
		}
		if e.value.Kind == yaml.MappingNode && len(e.value.Content) > 0 {
			if e, err := flatten(e.key+".", e.value, entries, seen); err != nil {
				return e, err
			}
			continue
		}
		*entries = append(*entries, e)
	}
	return entry{}, nil
}

// deref returns the node an alias (*name) stands for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}
