package config

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A command describes a subcommand for its usage text.
type command struct {
	name    string
	usage   string // the synopsis lines, "sumd <name> [flags]" if empty
	summary string
	example string
	// aliases are other names of options on the command line only:
	// alias → option. In the file and the environment the alias may name
	// another command's option.
	aliases map[string]string
	// helps replace, in this command's usage text, what a shared option
	// (a field of Database, DiskFloor…) says where the command takes less
	// of it: option → its placeholder and help.
	helps map[string]optionHelp
	// fallbacks name, for an option, another command's file key that
	// sets it when the config file does not (a file shared with sumd
	// serve says where the server works): option → key. The environment
	// and the flag still win over both.
	fallbacks map[string]string
}

// An optionHelp is an option's placeholder and help in a usage text.
type optionHelp struct{ arg, help string }

var (
	keygenCommand = command{
		name:    "keygen",
		usage:   "sumd keygen -name NAME [-key-dir keys]",
		summary: "Write a new Ed25519 signing key to DIR/NAME.key (mode 0600; keep it secret and\nbacked up: losing it ends the log) and its verifier key to DIR/NAME.vkey, and\nprint the verifier key: the GOSUMDB value. A \"/\" in NAME becomes \"_\" in the\nfile names. An existing key is never overwritten.",
		example: "sumd keygen -name sum.example.com",
		aliases: map[string]string{"dir": "key-dir"},
	}
	serveCommand = command{
		name:    "serve",
		summary: "Serve the checksum database over HTTP, as GOSUMDB for the go command.",
		example: "sumd serve -db /var/lib/sumd/sumd.db -key keys/sum.example.com.key",
	}
	addCommand = command{
		name:    "add",
		usage:   "sumd add [flags] MODULE@VERSION DIR|ZIP\n       sumd add [flags] -gosum FILE|DIR [FILE|DIR...]",
		summary: "Record a module version hashed from a directory or zip, or the module versions\nof go.sum files (a directory is walked for go.sum files). Works on the database:\nstop the server of a bbolt file first, or add through it with -server (a\nPostgreSQL database takes writes from every process at once).",
		example: "sumd add -key keys/sum.example.com.key example.com/m@v1.2.3 ./m",
	}
	keyRotateCommand = command{
		name:    "key rotate",
		usage:   "sumd key rotate [flags] -new-key FILE",
		summary: "Rotate the log's signing key without breaking any client: add a key. From then\non every tree head is signed by both, and sumd serve needs both (-key OLD,NEW).\nOnce every client knows the new verifier key, sumd key retire removes the old\none. Works on the database: stop the server of a bbolt file first.",
		example: "sumd key rotate -key keys/sum.example.com.key -new-key keys/next/sum.example.com.key",
	}
	keyRetireCommand = command{
		name:    "key retire",
		usage:   "sumd key retire [flags] -retire VKEY|FILE",
		summary: "Stop signing with a key, the last step of a rotation: once every client knows\nthe new verifier key, remove the old one. -key holds the key files the log signs\nwith now. Works on the database: stop the server of a bbolt file first.",
		example: "sumd key retire -key keys/sum.example.com.key,keys/next/sum.example.com.key -retire keys/sum.example.com.vkey",
	}
	verifyCommand = command{
		name:    "verify",
		usage:   "sumd verify -url URL -key VKEY [-state DIR] [-full] [-gosum FILE] [FILE...]\n       sumd verify -tuf-root FILE -tuf-url URL [-url URL] [-state DIR] [flags] [FILE...]",
		summary: "Audit a checksum database (sumd, sum.golang.org or any server of that protocol)\nover HTTP. Exit status 0: all is well; 1: a problem was found (even if the\naudit then stopped); 2: the audit could not run to the end and found nothing.",
		example: "sumd verify -url http://127.0.0.1:8080 -key keys/sum.example.com.vkey -state audit -full",
	}
	tufInitCommand = command{
		name:      "tuf init",
		usage:     "sumd tuf init -name NAME [-dir DIR] [-keys DIR] [-url URL] [-db FILE -key FILE[,FILE] | -vkey VKEYS]",
		summary:   "Create a TUF repository publishing the database's verifier keys: new root and\ntargets keys (offline: move them off the server) in -keys, snapshot and\ntimestamp keys (online, for sumd serve -tuf) in -online-keys. Clients pin\nDIR/metadata/1.root.json. See docs/keys.md.",
		example:   "sumd tuf init -name sum.example.com -db data/sumd.db -url https://sum.example.com",
		fallbacks: serveTUF,
	}
	tufPublishCommand = command{
		name:      "tuf publish",
		usage:     "sumd tuf publish [-dir DIR] [-keys DIR] [-db FILE -key FILE[,FILE] | -vkey VKEYS]",
		summary:   "Publish the log's current verifier keys (after sumd key rotate or retire) as a\nnew targets version signed with the offline targets key, then a new snapshot\nand timestamp if the online keys are at hand (else sumd serve signs them\nwithin a minute). Also renews the targets' expiry.",
		example:   "sumd tuf publish -db data/sumd.db -key keys/sum.example.com.key,keys/next/sum.example.com.key",
		fallbacks: serveTUF,
	}
	tufRotateRootCommand = command{
		name:      "tuf rotate-root",
		usage:     "sumd tuf rotate-root [-dir DIR] [-keys DIR[,DIR]] [-new-root-key FILE[,FILE]] [flags]",
		summary:   "Write the next root version, signed by a threshold of the current root keys\nand of the new ones: replace root, targets or online keys, change thresholds,\nor just renew the root's expiry. Clients walk every version from the one they\npinned.",
		example:   "sumd tuf rotate-root -keys /media/usb1/tuf,/media/usb2/tuf -new-root-key /media/usb3/tuf/root-new.key",
		fallbacks: serveTUF,
	}
	tufStatusCommand = command{
		name:      "tuf status",
		summary:   "Print the version and expiry of each role of a TUF repository, verified.",
		example:   "sumd tuf status -dir data/tuf",
		fallbacks: serveTUF,
	}
	tufGosumdbCommand = command{
		name:    "tuf gosumdb",
		usage:   "sumd tuf gosumdb -tuf-root FILE -tuf-url URL [-cache DIR]",
		summary: "Learn the database's verifier keys through TUF and print the GOSUMDB value\n(the oldest key, which every client trusts during a rotation, and the URL)\nfor the go command.",
		example: "sumd tuf gosumdb -tuf-root 1.root.json -tuf-url https://sum.example.com/tuf",
	}
)

// serveTUF are the fallbacks of the tuf steps that work on a repository
// (all but gosumdb): a config file shared with sumd serve that sets no dir
// or online-keys says, with serve's tuf and tuf-online-keys, where the
// server reads the repository and signs. tuf init takes them too: it
// creates the repository and online keys where the server will use them
// (it refuses a directory that already holds one).
var serveTUF = map[string]string{"dir": "tuf", "online-keys": "tuf-online-keys"}

// LoadServe configures `sumd serve` from args (without the subcommand name),
// env (as from os.Environ) and the YAML file they may name, and validates the
// result. It returns the arguments left after the flags. On -h or -help it
// prints the usage text to w and returns flag.ErrHelp; other errors are
// returned, not printed.
func LoadServe(args, env []string, w io.Writer) (*Serve, []string, error) {
	c := defaultServe()
	rest, err := loadValidated(serveCommand, &c, args, env, w)
	// The go command appends /lookup/… to GOSUMDB's URL: no "//".
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return &c, rest, err
}

// LoadAdd is LoadServe for `sumd add`.
func LoadAdd(args, env []string, w io.Writer) (*Add, []string, error) {
	c := defaultAdd()
	rest, err := loadValidated(addCommand, &c, args, env, w)
	return &c, rest, err
}

// A validator is a command's configuration.
type validator interface{ Validate() error }

// loadValidated loads cfg, a pointer to a struct holding the defaults, for
// cmd; fills in the database defaults that depend on other options, if cfg
// has a Database; and validates the result.
func loadValidated(cmd command, cfg validator, args, env []string, w io.Writer) ([]string, error) {
	rest, opts, err := load(cmd, cfg, args, env, w)
	if err != nil {
		return nil, err
	}
	var conflicts []error
	if e, ok := cfg.(interface{ exclusive() [][2][]string }); ok {
		conflicts = resolveExclusive(opts, e.exclusive())
	}
	if m, ok := cfg.(interface{ modes() []mode }); ok {
		if errs := checkModes(opts, m.modes()); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	if d, ok := cfg.(interface{ database() *Database }); ok {
		d.database().resolve()
	}
	var errs []error
	if n, ok := cfg.(interface{ needs() []need }); ok {
		errs = checkNeeds(opts, n.needs())
	}
	if err := errors.Join(append(errs, cfg.Validate())...); err != nil {
		return nil, errors.Join(append([]error{withSources(err, opts)}, conflicts...)...)
	}
	if s, ok := cfg.(interface{ sources() *Sources }); ok {
		s.sources().record(opts)
	}
	return rest, nil
}

// A sourcedError is a Validate error with, below each line, where the
// options it names got their values, when not from a flag: the lines name
// the option and its value, not the file or variable to fix.
type sourcedError struct {
	text string
	err  error
}

func (e *sourcedError) Error() string { return e.text }
func (e *sourcedError) Unwrap() error { return e.err }

// withSources adds to err, after each of its lines, a detail line for
// each option the line names that the file or the environment set.
func withSources(err error, opts []option) error {
	var b strings.Builder
	told := map[string]bool{}
	for i, line := range strings.Split(err.Error(), "\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(line)
		if strings.HasPrefix(line, "\t") {
			continue
		}
		for _, o := range opts {
			v := o.Value.(*value)
			if k := v.src.kind; (k == fromFile || k == fromEnv) && !told[o.Name] && names(line, o.Name) {
				told[o.Name] = true
				fmt.Fprintf(&b, "\n\t%s is set by %s", o.Name, v.src.describe(o.Name))
			}
		}
	}
	if len(told) == 0 {
		return err
	}
	return &sourcedError{b.String(), err}
}

// names reports whether line names the option called name: as a word
// ("invalid listen address") or a flag ("set -listen"), not as part of
// another option's name (admin-listen, listen-x).
func names(line, name string) bool {
	isName := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' }
	for i := 0; ; {
		j := strings.Index(line[i:], name)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(name)
		left := start == 0 || !isName(line[start-1]) ||
			line[start-1] == '-' && (start == 1 || !isName(line[start-2]))
		if left && (end == len(line) || !isName(line[end])) {
			return true
		}
		i = start + 1
	}
}

// Sources remembers where each option got its value, for a command that
// finds a value bad only when it uses it (sumd verify's -key, a file that
// holds no verifier key): its error can then name the variable or config
// file to fix, as withSources adds to Validate's.
type Sources struct{ set map[string]layer }

func (s *Sources) sources() *Sources { return s }

func (s *Sources) record(opts []option) {
	s.set = map[string]layer{}
	for _, o := range opts {
		s.set[o.Name] = o.Value.(*value).src
	}
}

// WithSource returns err followed by withSources' detail line for the
// option called name ("key is set by SUMD_KEY") when the config file or
// the environment set it; else err, as for a nil s.
func (s *Sources) WithSource(err error, name string) error {
	if s == nil {
		return err
	}
	l := s.set[name]
	if l.kind != fromFile && l.kind != fromEnv {
		return err
	}
	return &sourcedError{err.Error() + "\n\t" + name + " is set by " + l.describe(name), err}
}

func (d *Database) database() *Database { return d }

// resolve fills in the defaults that depend on other options. Without a
// key file the name picks it (DefaultName if unset); with one, an unset name
// is left for the key to supply.
func (d *Database) resolve() {
	if d.Key == "" {
		d.Name = cmp.Or(d.Name, DefaultName)
		d.Key = DefaultKeyFile(d.Name)
	}
}

// load sets the options of cfg, a pointer to a struct holding the defaults,
// from the layers in order and returns the arguments left after the flags.
func load(cmd command, cfg any, args, env []string, w io.Writer) ([]string, []option, error) {
	fs := flag.NewFlagSet("sumd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is printed only for -h
	fs.Usage = func() {}
	var configFile struct {
		Path string `flag:"config" help:"the YAML file"`
	}
	configOpt := bind(fs, &configFile)
	opts := bind(fs, cfg)
	for alias, name := range cmd.aliases {
		fs.Var(fs.Lookup(name).Value, alias, "")
	}

	// Parse once to find -config and to fail early on bad flags, and again
	// at the end so that flags win over the file and the environment.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(w, cmd, opts)
		}
		return nil, nil, suggestFlag(err, fs)
	}
	if err := flagTakenAsValue(fs, opts, args, cmd.name); err != nil {
		return nil, nil, err
	}
	for _, o := range append(configOpt, opts...) {
		if err := o.Value.(*value).checkRepeat(); err != nil {
			return nil, nil, err
		}
	}
	vars := environ(env)
	warnUnknownEnv(w, vars)
	// -config= loads no file, as an empty flag clears any other option.
	path := configFile.Path
	if configOpt[0].Value.(*value).src.kind != fromFlag {
		path = vars["SUMD_CONFIG"]
	}
	if path != "" {
		newLayer(opts, layer{kind: fromFile, file: path})
		if err := loadFile(path, opts, cmd.fallbacks); err != nil {
			return nil, nil, err
		}
	}
	newLayer(opts, layer{kind: fromEnv})
	overrides, err := loadEnv(vars, opts)
	if err != nil {
		return nil, nil, err
	}
	newLayer(opts, layer{kind: fromFlag})
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := flagAfterArgs(fs, args, cmd.name); err != nil {
		return nil, nil, err
	}
	warnOverrides(w, overrides)
	warnPasswords(w, opts)
	return fs.Args(), opts, nil
}

// warnPasswords warns about each URL of the options that holds a password
// (postgres://user:PASSWORD@host, ?password=, https://user:PASSWORD@proxy):
// whoever reads the config file (sumd.yaml is installed 0644), the
// environment or the process list reads it too. Only a warning: such URLs
// work, and refusing them would stop servers that start today.
func warnPasswords(w io.Writer, opts []option) {
	for _, o := range opts {
		v := o.Value.(*value)
		s, ok := v.Get().(string)
		if !ok || v.src.kind == fromDefault || !holdsPassword(s) {
			continue
		}
		advice := "give it in PGPASSWORD or a passfile (PGPASSFILE, ~/.pgpass) instead (docs/ha.md)"
		if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
			advice = "give credentials in a file instead, as -upstream-auth basic:USER:PASSWORD_FILE or -auth do"
		}
		fmt.Fprintf(w, "sumd: warning: %s: the URL in %s holds a password, which whoever reads it reads too: %s\n", o.Name, v.src.describe(o.Name), advice)
	}
}

// holdsPassword reports whether one of the URLs of s (a list such as
// GOPROXY's, split at "," and "|") holds a password.
func holdsPassword(s string) bool {
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }) {
		if !strings.Contains(part, "://") {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := u.Query()
		if _, set := u.User.Password(); set || q.Has("password") || q.Has("sslpassword") {
			return true
		}
	}
	return false
}

// An override is a file's value that a variable replaced.
type override struct {
	opt  option
	file layer  // the config file and line
	was  string // the file's value
}

// warnOverrides warns about each value of the config file that a variable
// replaced and no flag did: the environment wins by design, but a SUMD_*
// set where the operator does not look (the Dockerfile's SUMD_LISTEN, a
// shell profile) silently made the file's line do nothing.
func warnOverrides(w io.Writer, overrides []override) {
	for _, o := range overrides {
		v := o.opt.Value.(*value)
		switch {
		case v.src.kind != fromEnv:
		case !v.shows(v.String(), o.was):
			fmt.Fprintf(w, "sumd: warning: %s overrides %s of %s (%s)\n",
				envName(o.opt.Name), cmp.Or(o.file.key, o.opt.Name), o.file.describe(o.opt.Name), notRepeated)
		default:
			fmt.Fprintf(w, "sumd: warning: %s overrides %s of %s (%q instead of %q)\n",
				envName(o.opt.Name), cmp.Or(o.file.key, o.opt.Name), o.file.describe(o.opt.Name), redactValue(v.String()), redactValue(o.was))
		}
	}
}

// flagAfterArgs refuses a flag of the command given after its arguments:
// the flag package stops at the first argument and takes what follows for
// arguments, so `sumd add MODULE@VERSION DIR -key K` got four arguments and
// `sumd add -gosum A.sum B.sum -key K` read -key as a go.sum file. What
// follows "--" is an argument whatever it looks like.
func flagAfterArgs(fs *flag.FlagSet, args []string, cmd string) error {
	rest := fs.Args()
	if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
		return nil
	}
	for _, a := range rest {
		if a == "--" {
			return nil
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name != "" && fs.Lookup(name) != nil {
			return fmt.Errorf("-%s comes after the arguments, where it is taken for one: flags go before the arguments (see sumd %s -h)", name, cmd)
		}
	}
	return nil
}

// flagTakenAsValue refuses a flag of the command that the option before
// it took as its value: the flag package gives an option the next
// argument whatever it looks like, so `sumd add -gosum -server URL FILE`
// (the docs' shorthand, typed as read) read -server as the go.sum file,
// failed on "stat -server", and left URL and FILE for arguments. A value
// given with "=" is taken as written, and so is one that names an
// existing file.
func flagTakenAsValue(fs *flag.FlagSet, opts []option, args []string, cmd string) error {
	n := len(args) - len(fs.Args())
	for i := 0; i+1 < n; i++ {
		if args[i] == "--" {
			return nil
		}
		f, valued := flagOf(fs, args[i])
		if f == nil || valued || isBool(f) {
			continue
		}
		i++ // its value
		next, _ := flagOf(fs, args[i])
		if next == nil {
			continue
		}
		if _, err := os.Lstat(args[i]); err == nil {
			continue
		}
		usage := "-" + next.Name
		if a := argOf(opts, next); a != "" {
			usage += " " + a
		}
		arg := argOf(opts, f)
		return fmt.Errorf("-%s takes %s as its value, not the flag %s after it: sumd %s -%s %s [%s]; put the other flags before -%s, or its value right after it",
			f.Name, arg, args[i], cmd, f.Name, arg, usage, f.Name)
	}
	return nil
}

// flagOf returns the flag of the command that arg ("-name", "--name" or
// either with "=value") sets, if any, and whether arg holds its value.
func flagOf(fs *flag.FlagSet, arg string) (f *flag.Flag, valued bool) {
	name, ok := strings.CutPrefix(arg, "-")
	if !ok {
		return nil, false
	}
	name = strings.TrimPrefix(name, "-")
	name, _, valued = strings.Cut(name, "=")
	if name == "" {
		return nil, false
	}
	return fs.Lookup(name), valued
}

// argOf is the placeholder of f's value in the usage text ("" for a
// bool, "VALUE" if it has none).
func argOf(opts []option, f *flag.Flag) string {
	for _, o := range opts {
		if o.Value == f.Value {
			if isBool(f) {
				return ""
			}
			return cmp.Or(o.arg, "VALUE")
		}
	}
	return "VALUE"
}

// isBool reports whether f needs no value, as the flag package asks.
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// An option is a field of a configuration struct, bound to a flag.
type option struct {
	*flag.Flag
	arg string // placeholder for the value in the usage text
}

// bind defines a flag for each field of *cfg, in field order, recursing into
// embedded structs. The flags write to the fields, whose current values are
// the defaults.
func bind(fs *flag.FlagSet, cfg any) []option {
	var opts []option
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			field, fv := v.Type().Field(i), v.Field(i)
			if !field.IsExported() {
				continue // not an option: Sources' record of them
			}
			name, help, arg := field.Tag.Get("flag"), field.Tag.Get("help"), field.Tag.Get("arg")
			if !field.Anonymous && (name == "" || help == "") {
				panic(fmt.Sprintf("config: field %s needs flag and help tags", field.Name))
			}
			// The flag package's own Values, defined on a scratch set, do
			// the parsing; value explains their errors.
			scratch := flag.NewFlagSet("", flag.ContinueOnError)
			switch p := fv.Addr().Interface().(type) {
			case *string:
				scratch.StringVar(p, name, *p, help)
			case *bool:
				scratch.BoolVar(p, name, *p, help)
			case *int:
				scratch.Var(&intValue{p}, name, help)
				arg = cmp.Or(arg, "N")
			case *time.Duration:
				scratch.DurationVar(p, name, *p, help)
				arg = cmp.Or(arg, "DURATION")
			case *[]string:
				scratch.Var(&listValue{p: p, fresh: true}, name, help)
			default:
				if !field.Anonymous || field.Type.Kind() != reflect.Struct {
					panic(fmt.Sprintf("config: field %s has unsupported type %s", field.Name, field.Type))
				}
				walk(fv)
				continue
			}
			v := &value{Getter: scratch.Lookup(name).Value.(flag.Getter), name: name, help: help, arg: arg, secret: field.Tag.Get("secret") == "true", layer: layer{kind: fromFlag}}
			fs.Var(v, name, help)
			opts = append(opts, option{fs.Lookup(name), arg})
		}
	}
	walk(reflect.ValueOf(cfg).Elem())
	return opts
}

// fileKeys lists the keys a YAML file may hold: the options of every
// subcommand, so that one file can configure them all.
func fileKeys() []string {
	var keys []string
	for _, cfg := range []any{&Serve{}, &Add{}, &Verify{}, &Key{}, &TUFInit{}, &TUFPublish{}, &TUFRotateRoot{}, &TUFStatus{}, &TUFGosumdb{}, &Sync{}, &OCIPush{}, &Status{}, &Keygen{}, &Copy{},
		&Mirror{}, &MirrorExport{}, &MirrorImport{}, &Backup{}, &BackupVerify{}, &Restore{}} {
		for _, o := range bind(flag.NewFlagSet("", flag.ContinueOnError), cfg) {
			if !slices.Contains(keys, o.Name) {
				keys = append(keys, o.Name)
			}
		}
	}
	return keys
}

// loadFile sets opts from the config file at path, then each option of
// fallbacks the file left unset from the other key fallbacks names.
func loadFile(path string, opts []option, fallbacks map[string]string) error {
	entries, err := readFile(path)
	if err != nil {
		return err
	}
	known := fileKeys()
	stands := map[string]entry{} // the entries of fallbacks' keys
	for _, e := range entries {
		if !slices.Contains(known, e.key) {
			// About 100 keys are known: a suggestion helps, the list does not.
			hint := "; see sumd help COMMAND for the options"
			// Keys are lower case with "-": MAX_BATCH and SUMD_MAX_BATCH
			// (a variable's name) are too far from max-batch to be found.
			if alt := strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(e.key, "_", "-")), "sumd-"); slices.Contains(known, alt) {
				hint = fmt.Sprintf(" (did you mean %q?)", alt)
			} else if alt := closest(e.key, known); alt != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", alt)
			}
			return fmt.Errorf("%s: unknown key %q%s", e.at(path), e.key, hint)
		}
		i := slices.IndexFunc(opts, func(o option) bool { return o.Name == e.key })
		if i < 0 {
			stands[e.key] = e
			continue // another subcommand's option
		}
		if err := setEntry(path, opts[i], e); err != nil {
			return err
		}
	}
	// The fallbacks go together: a file that sets any of them for this
	// command (its own dir:, say) names another repository than the other
	// command's, whose online keys must not be taken for it.
	for name := range fallbacks {
		i := slices.IndexFunc(opts, func(o option) bool { return o.Name == name })
		if i >= 0 && opts[i].Value.(*value).src.kind == fromFile {
			return nil
		}
	}
	for name, key := range fallbacks {
		i := slices.IndexFunc(opts, func(o option) bool { return o.Name == name })
		e, ok := stands[key]
		// An empty value is the other command's default or "none" (serve's
		// tuf: "" serves no repository): it says nothing of this option.
		empty := e.value != nil && e.value.Kind == yaml.ScalarNode && (e.value.Value == "" || e.value.Tag == "!!null")
		if ok && !empty && opts[i].Value.(*value).src.kind != fromFile {
			if err := setEntry(path, opts[i], e); err != nil {
				return err
			}
		}
	}
	return nil
}

// setEntry sets o from the file entry e.
func setEntry(path string, o option, e entry) error {
	v := o.Value.(*value)
	v.layer.line, v.layer.key = e.line, e.key
	if err := setNode(o.Flag, e.value); err != nil {
		return fmt.Errorf("%s: %s: %w", e.at(path), e.key, err)
	}
	return nil
}

// setNode sets f from a YAML value: the text of a scalar as written (so
// that 1.10 is not read as the number 1.1, nor 0123 as 83), or a list of
// scalars for a list option. null (~, or nothing) counts as empty.
func setNode(f *flag.Flag, n *yaml.Node) error {
	switch {
	case n.Kind == yaml.SequenceNode && isList(f):
		var items []string
		for _, it := range n.Content {
			if it = deref(it); it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return errors.New("want a list of single values")
			}
			items = append(items, it.Value)
		}
		return setList(f, items)
	case n.Kind == yaml.SequenceNode && takesCommaList(f):
		return commaListError(f, n)
	case n.Kind != yaml.ScalarNode:
		return errors.New("want a single value, not a list or map")
	case n.Tag == "!!null":
		return set(f, "")
	}
	return set(f, n.Value)
}

// takesCommaList reports whether f takes several values in one
// comma-separated string, as its placeholder or help says.
func takesCommaList(f *flag.Flag) bool {
	v := f.Value.(*value)
	return strings.Contains(v.help, "comma-separated") || strings.Contains(v.arg, ",") ||
		slices.ContainsFunc([]string{"LIST", "FILES", "NAMES", "PATTERNS", "VKEYS"}, func(s string) bool { return strings.Contains(v.arg, s) })
}

// commaListError refuses the YAML list n given to f, which takes one
// comma-separated string, showing that string: a list is what an operator
// writes for -key old.key,new.key, and the file would otherwise say only
// that it wants a single value.
func commaListError(f *flag.Flag, n *yaml.Node) error {
	var items []string
	for _, it := range n.Content {
		if it = deref(it); it.Kind != yaml.ScalarNode {
			return errors.New("want one comma-separated string, not a YAML list")
		}
		items = append(items, it.Value)
	}
	if !f.Value.(*value).shows(items...) {
		return fmt.Errorf("want one comma-separated string, such as %s: a,b, not a YAML list (%s)", f.Name, notRepeated)
	}
	return fmt.Errorf("want one comma-separated string, not a YAML list: %s: %q", f.Name, redactValue(strings.Join(items, ",")))
}

// loadEnv sets the options from the variables, and returns the values of
// the config file they replaced with others.
func loadEnv(vars map[string]string, opts []option) ([]override, error) {
	var overrides []override
	for _, o := range opts {
		name := envName(o.Name)
		if v := vars[name]; v != "" {
			was := o.Value.(*value).src
			before := o.Value.String()
			if err := set(o.Flag, v); err != nil {
				return nil, fmt.Errorf("environment variable %s: %w", name, err)
			}
			if was.kind == fromFile && o.Value.String() != before {
				overrides = append(overrides, override{o, was, before})
			}
		}
	}
	return overrides, nil
}

// environ returns the SUMD_* variables of env. Like os.Getenv, it takes the
// first of repeated variables.
func environ(env []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if _, seen := vars[k]; ok && !seen && strings.HasPrefix(k, "SUMD_") {
			vars[k] = v
		}
	}
	return vars
}

// warnUnknownEnv warns about each SUMD_* variable that names no option of
// any subcommand: most likely a typo, which would otherwise pass silently.
// Only a warning, since one shell profile may serve several sumd versions.
func warnUnknownEnv(w io.Writer, vars map[string]string) {
	known := []string{"SUMD_CONFIG"}
	for _, k := range fileKeys() {
		known = append(known, envName(k))
	}
	var unknown []string
	for name := range vars {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		hint := ""
		if alt := closest(name, known); alt != "" {
			hint = fmt.Sprintf("; did you mean %s?", alt)
		}
		fmt.Fprintf(w, "sumd: warning: ignoring environment variable %s: no sumd option has that name%s\n", name, hint)
	}
}

// suggestFlag adds to the flag package's error for an unknown flag the
// command's flag nearest to it, as warnUnknownEnv does for variables.
func suggestFlag(err error, fs *flag.FlagSet) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return err
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if alt := closest(strings.TrimPrefix(name, "-"), names); alt != "" {
		return fmt.Errorf("%w (did you mean -%s?)", err, alt)
	}
	return err
}

// closest returns the name of known nearest to name, if it is at most two
// edits away.
func closest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// envName is the environment variable of the option called name.
func envName(name string) string {
	return "SUMD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func printUsage(w io.Writer, cmd command, opts []option) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\n", cmp.Or(cmd.usage, "sumd "+cmd.name+" [flags]"), cmd.summary)
	name, val := layersExample(opts)
	clear := "config" // the command's first string option: "" clears it
	if i := slices.IndexFunc(opts, func(o option) bool { _, ok := o.Value.(*value).Get().(string); return ok }); i >= 0 {
		clear = opts[i].Name
	}
	fmt.Fprint(w, wrap(fmt.Sprintf(`Every flag is also an environment variable and a key of the YAML file named by -config: -%s %s, %s=%s and "%s: %s" mean the same. Flags win over the environment, which wins over the file; an empty variable counts as unset (to clear a value the file sets, pass the flag empty: -%s=).`,
		name, val, envName(name), val, name, val, clear), ""))
	fmt.Fprint(w, "\nFlags:\n")
	printFlag(w, "config", "FILE", "YAML file of options, one key per flag below", "", "SUMD_CONFIG")
	for _, o := range opts {
		def := o.DefValue
		if _, ok := o.Value.(flag.Getter).Get().(string); ok && def != "" {
			def = strconv.Quote(def)
		}
		h, ok := cmd.helps[o.Name]
		if !ok {
			h = optionHelp{o.arg, o.Usage}
		}
		printFlag(w, o.Name, h.arg, h.help, def, envName(o.Name))
	}
	fmt.Fprintf(w, "\nExample:\n  %s\n", cmd.example)
}

// layersExample returns an option of the command and a value of it, for
// the usage text: the first with a default that is not a bool, else the
// first with its placeholder.
func layersExample(opts []option) (name, val string) {
	for _, o := range opts {
		if _, isBool := o.Value.(*value).Get().(bool); !isBool && o.DefValue != "" && !strings.ContainsAny(o.DefValue, " ,") {
			return o.Name, o.DefValue
		}
	}
	if len(opts) == 0 {
		return "config", "FILE"
	}
	return opts[0].Name, cmp.Or(opts[0].arg, "VALUE")
}

// printFlag prints one flag much as the flag package does, adding its
// environment variable.
func printFlag(w io.Writer, name, arg, help, def, env string) {
	if def != "" {
		env += "; default " + def
	}
	if arg != "" {
		name += " " + arg
	}
	fmt.Fprintf(w, "  -%s (env %s)\n%s", name, env, wrap(help, "        "))
}

// wrap breaks s into lines of at most about 80 columns, each starting with
// indent.
func wrap(s, indent string) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(word) > 80 {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}
