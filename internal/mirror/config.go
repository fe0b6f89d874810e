package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// decodeConfig reads a stored configuration as WriteConfig writes it: one
// JSON object of Config's fields, each at most once under its exact name,
// of its type (null only for a list, which json.Marshal writes for none).
// encoding/json alone would take a field twice (the last wins), match
// names in any case, read null as "" and drop a field it does not know,
// so a damaged or newer configuration would be read as some other one,
// ReadWith lost and a private mirror served to anyone. A field this sumd
// does not know is ErrNewerConfig; anything else is ErrCorrupt.
func decodeConfig(data []byte) (*Config, error) {
	if len(data) > maxConfig {
		return nil, configDamaged(fmt.Errorf("%d bytes, more than %d", len(data), maxConfig))
	}
	if !utf8.Valid(data) {
		return nil, configDamaged(errors.New("not UTF-8")) // json would read U+FFFD in its place
	}
	c := new(Config)
	fields := configFields(c)
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, configDamaged(errors.New("not a JSON object"))
	}
	seen := make(map[string]bool)
	newer := ""
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, configDamaged(err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, configDamaged(err)
		}
		f, ok := fields[name]
		switch {
		case !ok && knownFold(fields, name):
			return nil, configDamaged(fmt.Errorf("field %q is not in the case sumd writes", name))
		case !ok:
			if newer == "" {
				newer = name
			}
		case seen[name]:
			return nil, configDamaged(fmt.Errorf("field %q appears twice", name))
		default:
			seen[name] = true
			if err := decodeField(raw, f); err != nil {
				return nil, configDamaged(fmt.Errorf("field %q: %w", name, err))
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, configDamaged(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, configDamaged(errors.New("more data after the object"))
	}
	if newer != "" {
		return nil, fmt.Errorf("%w: it holds the field %q, which this sumd does not know and would drop (if no newer sumd wrote it, it is damaged): upgrade sumd", ErrNewerConfig, newer)
	}
	return c, nil
}

func configDamaged(err error) error {
	return fmt.Errorf("%w: the mirror configuration (%s) is damaged: %w", itlog.ErrCorrupt, auxConfig, err)
}

// configFields maps each JSON name of Config's fields to the field in c.
func configFields(c *Config) map[string]reflect.Value {
	v := reflect.ValueOf(c).Elem()
	fields := make(map[string]reflect.Value, v.NumField())
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		fields[name] = v.Field(i)
	}
	return fields
}

func knownFold(fields map[string]reflect.Value, name string) bool {
	for known := range fields {
		if strings.EqualFold(known, name) {
			return true
		}
	}
	return false
}

// decodeField decodes raw into f, refusing null but for a whole list.
func decodeField(raw json.RawMessage, f reflect.Value) error {
	isNull := func(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }
	if isNull(raw) {
		if f.Kind() == reflect.Slice {
			return nil
		}
		return errors.New("null")
	}
	if f.Kind() == reflect.Slice {
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return err
		}
		for _, e := range elems {
			if isNull(e) {
				return errors.New("null in the list")
			}
		}
	}
	return json.Unmarshal(raw, f.Addr().Interface())
}
