package presets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// File is a preset file to read.
type File struct {
	Path   string
	Source Source
}

// Files returns the preset files in the order they are read: the site's
// (system; none when ""), then the user's, by default
// ${DOCKER_CONFIG:-~/.docker}/perceptron/presets.yaml.
func Files(system, user string) []File {
	if user == "" {
		user = filepath.Join(config.Dir(), "perceptron", "presets.yaml")
	}
	var files []File
	if system != "" {
		files = append(files, File{Path: system, Source: SourceSystem})
	}
	return append(files, File{Path: user, Source: SourceUser})
}

// Options tell Load how to check settings.
type Options struct {
	// Flags returns a fresh flag set of the stock docker run command; a
	// setting is valid when its name is one of these flags and Set accepts
	// its value, so every value gets docker's own error message.
	Flags func() *pflag.FlagSet
	// Special checks values that docker's parsers do not take but that
	// docker perceptron gives a meaning ("gpus: auto:2", "tty: auto") and
	// options of its own ("gpu-max-memory"). It reports whether it handled
	// the setting; when it did not, the docker flag parser checks it.
	Special func(flag, value string) (bool, error)
}

// Load reads the built-in presets and then each file in order; a later
// definition of a name replaces an earlier one. A file that does not exist
// is skipped. A file that does not load (it cannot be read, is larger than
// 1 MiB, or holds an error, its extends chains included) is set aside: the
// store holds the other files' presets, and Load returns it with a
// *SetAsideError that lists the files set aside. A preset that such a file
// defines, or that extends one, is unavailable: Get and Expand return an
// *UnavailableError carrying the file's error. Load returns no store only
// when the built-in presets do not load. It checks every preset's extends
// chain, in time linear in the number of presets.
func Load(builtin []byte, files []File, opts Options) (*Store, error) {
	if opts.Flags != nil {
		// One flag set checks every setting: Set only accumulates values,
		// which nobody reads, and building docker's commands costs time.
		flags := opts.Flags()
		opts.Flags = func() *pflag.FlagSet { return flags }
	}
	builtins, _, err := parse(builtin, File{Source: SourceBuiltin}, opts)
	if err != nil {
		return nil, fmt.Errorf("built-in presets: %w", builtinErr(err))
	}
	loaded := []loadedFile{{presets: builtins}}
	for _, f := range files {
		data, err := readFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			loaded = append(loaded, loadedFile{file: f, err: &FileError{Path: f.Path, Err: err}})
			continue
		}
		ps, names, err := parse(data, f, opts)
		if err != nil {
			loaded = append(loaded, loadedFile{file: f, err: newFileError(f.Path, names, err)})
			continue
		}
		loaded = append(loaded, loadedFile{file: f, presets: ps, names: names})
	}
	// An extends chain that fails sets aside the file of the preset it
	// fails at, and the others are checked again: at most once a file.
	for {
		s := compose(loaded)
		ce := s.checkChains()
		if ce == nil {
			return s, s.setAsideErr()
		}
		i := s.origin[ce.p]
		if i == 0 {
			return nil, fmt.Errorf("built-in presets: preset %s: %w", ce.p.Name, ce.err)
		}
		loaded[i].err = &FileError{Path: ce.p.File, Line: ce.p.Line, Err: fmt.Errorf("preset %s: %w", Echo(ce.p.Name), ce.err), names: loaded[i].names}
		loaded[i].presets = nil
	}
}

// loadedFile is a file as Load read it: its presets, in order, or its
// error.
type loadedFile struct {
	file    File
	presets []*Preset
	names   map[string]bool // the preset names it defines; nil when unknown
	err     *FileError
}

// compose makes the store of the loaded files, in order, a later
// definition of a name replacing an earlier one; a name that a file set
// aside defines is unavailable unless a later file defines it again.
func compose(loaded []loadedFile) *Store {
	s := &Store{presets: map[string]*Preset{}, unavailable: map[string]error{}, origin: map[*Preset]int{}}
	for i, lf := range loaded {
		if lf.err != nil {
			s.setAside = append(s.setAside, lf.err)
			if lf.err.names == nil {
				s.unread = append(s.unread, lf.err)
			}
			for name := range lf.err.names {
				s.unavailable[name] = &UnavailableError{Name: name, File: lf.err}
			}
			continue
		}
		for _, p := range lf.presets {
			s.presets[p.Name] = p
			s.origin[p] = i
			delete(s.unavailable, p.Name)
		}
	}
	for name := range s.unavailable {
		delete(s.presets, name)
	}
	return s
}

// builtinErr places an error of the built-in presets at its line.
func builtinErr(err error) error {
	var le *lineError
	if errors.As(err, &le) {
		return fmt.Errorf("line %d: %w", le.line, le.err)
	}
	return err
}

// readFile reads the preset file at path, refusing one larger than
// maxFileSize before reading it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, readErr(err)
	}
	defer f.Close()
	tooLarge := func(size string) error {
		return fmt.Errorf("preset file is %s bytes; the limit is 1 MiB: remove the presets you do not use, or move them to a file of their own", size)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxFileSize {
		return nil, tooLarge(strconv.FormatInt(fi.Size(), 10))
	}
	// A file that grows, or is no regular file, is cut at the limit.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, readErr(err)
	}
	if len(data) > maxFileSize {
		return nil, tooLarge(fmt.Sprintf("more than %d", maxFileSize))
	}
	return data, nil
}

// readErr is the error of a preset file that exists but cannot be read,
// without the path that FileError adds.
func readErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot read the preset file: %w", pe.Err)
	}
	return fmt.Errorf("cannot read the preset file: %w", err)
}

// parse reads the presets of one file, in order, and the names it defines
// (nil when the file is not a mapping of names, or not YAML). An error
// holds no path; one at a line is a *lineError.
func parse(data []byte, f File, opts Options) ([]*Preset, map[string]bool, error) {
	notYAML := func(err error) error {
		return fmt.Errorf("not valid YAML: %w", parserError(err, ""))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, map[string]bool{}, nil // empty file
	} else if err != nil {
		return nil, nil, notYAML(err)
	}
	names := topNames(&doc)
	// A file is one document: presets after a "---" would be ignored.
	if err := dec.Decode(&next); err == nil {
		return nil, names, &lineError{line: next.Line, err: errors.New("a second YAML document starts here: a preset file is one document; remove this \"---\" line, or the presets after it")}
	} else if err != io.EOF {
		return nil, names, notYAML(err)
	}
	if len(doc.Content) == 0 {
		return nil, map[string]bool{}, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, lineErr(root, "expected a mapping of preset names to presets")
	}
	var out []*Preset
	defined := map[string]int{} // line of each preset name in this file
	for i := 0; i+1 < len(root.Content); i += 2 {
		nameNode, body := root.Content[i], root.Content[i+1]
		p := &Preset{Name: nameNode.Value, Source: f.Source, File: f.Path, Line: nameNode.Line}
		if p.Name == "" || strings.ContainsAny(p.Name, " \t,") {
			return nil, names, lineErr(nameNode, "invalid preset name %s: use letters, digits, '-', '_' or '.'", Echo(p.Name))
		}
		if first, ok := defined[p.Name]; ok {
			return nil, names, lineErr(nameNode, "preset %s is defined twice in this file (first at line %d): keep one of them, or rename one", Echo(p.Name), first)
		}
		defined[p.Name] = nameNode.Line
		if body.Kind != yaml.MappingNode {
			return nil, names, lineErr(body, "preset %s: expected a mapping of docker run options to values", Echo(p.Name))
		}
		if err := p.parseBody(body, opts); err != nil {
			line := body.Line
			var le *lineError
			if errors.As(err, &le) {
				line, err = le.line, le.err
			}
			return nil, names, &lineError{line: line, err: fmt.Errorf("preset %s: %w", Echo(p.Name), err)}
		}
		out = append(out, p)
	}
	return out, names, nil
}

// topNames returns the preset names that the document defines, whatever
// their bodies hold: those of a file set aside are unavailable. It returns
// nil for a document that is no mapping.
func topNames(doc *yaml.Node) map[string]bool {
	if len(doc.Content) == 0 {
		return map[string]bool{}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil
	}
	names := make(map[string]bool, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		names[root.Content[i].Value] = true
	}
	return names
}

type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }

func (e *lineError) Unwrap() error { return e.err }

func lineErr(n *yaml.Node, format string, args ...any) error {
	return &lineError{line: n.Line, err: fmt.Errorf(format, args...)}
}

// keyUse is where an option was first given in a preset.
type keyUse struct {
	key  string
	line int
}

// once refuses an option given twice in a preset, under one spelling or
// two (a shorthand and its long name): a repeatable one takes a list, and
// YAML keeps one of two values of a key.
func once(given map[string]keyUse, name string, keyNode *yaml.Node) error {
	key := keyNode.Value
	first, ok := given[name]
	if !ok {
		given[name] = keyUse{key: key, line: keyNode.Line}
		return nil
	}
	hint := "give it once"
	if Repeatable(name) {
		hint += ", its values as a list"
	}
	if first.key == key {
		return lineErr(keyNode, "%s is given twice (first at line %d): %s", bare(key), first.line, hint)
	}
	return lineErr(keyNode, "%s is given twice, as %s here and as %s at line %d: %s", bare(name), bare(key), bare(first.key), first.line, hint)
}

func (p *Preset) parseBody(body *yaml.Node, opts Options) error {
	var flags *pflag.FlagSet
	if opts.Flags != nil {
		flags = opts.Flags()
	}
	given := map[string]keyUse{} // by canonical option name
	for i := 0; i+1 < len(body.Content); i += 2 {
		keyNode, val := body.Content[i], body.Content[i+1]
		name := keyNode.Value
		own := name == "training" || name == "description" || name == "extends" || name == "open"
		if !own {
			name = Canonical(flagName(flags, name))
		}
		if err := once(given, name, keyNode); err != nil {
			return err
		}
		var err error
		if own {
			err = p.setOwn(name, val)
		} else {
			err = p.addSetting(name, val, flags, opts.Special)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// setOwn reads a preset's own key: training, description, extends, open.
func (p *Preset) setOwn(key string, val *yaml.Node) error {
	if key == "open" {
		port, err := strconv.Atoi(val.Value)
		if val.Kind != yaml.ScalarNode || err != nil || port < 1 || port > 65535 {
			return lineErr(val, "open must be a container port, from 1 to 65535")
		}
		p.Open = val.Value
		return nil
	}
	if key == "training" {
		b, err := strconv.ParseBool(val.Value)
		if val.Kind != yaml.ScalarNode || err != nil {
			return lineErr(val, "training must be true or false")
		}
		p.Training = &b
		return nil
	}
	if val.Kind != yaml.ScalarNode {
		return lineErr(val, "%s must be a string", key)
	}
	if key == "description" {
		p.Description = val.Value
	} else {
		p.Extends = val.Value
	}
	return nil
}

// addSetting checks and adds the values of docker run option key.
func (p *Preset) addSetting(key string, val *yaml.Node, flags *pflag.FlagSet, special func(flag, value string) (bool, error)) error {
	values, err := scalarValues(key, val)
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			return err
		}
		return &lineError{line: val.Line, err: err}
	}
	for _, v := range values {
		if err := checkSetting(flags, special, key, v.Value); err != nil {
			return lineErr(v, "%w", err)
		}
		p.Settings = append(p.Settings, Setting{Flag: key, Value: v.Value, Line: v.Line})
	}
	return nil
}

// mapValued are the options whose values may be written as a YAML mapping
// of KEY: value, each becoming KEY=value.
var mapValued = map[string]bool{
	"env": true, "label": true, "annotation": true, "sysctl": true,
	"log-opt": true, "storage-opt": true, "ulimit": true,
}

// scalarValues returns the values a YAML node gives an option: a scalar is
// one, a sequence is one per item, a mapping (for KEY=value options) one per
// pair.
func scalarValues(key string, n *yaml.Node) ([]*yaml.Node, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []*yaml.Node{n}, nil
	case yaml.SequenceNode:
		if !Repeatable(key) {
			return nil, fmt.Errorf("%s takes one value, not a list", bare(key))
		}
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: list items must be strings", bare(key))
			}
		}
		return n.Content, nil
	case yaml.MappingNode:
		if !mapValued[Canonical(key)] {
			return nil, fmt.Errorf("%s takes a value or a list, not a mapping", bare(key))
		}
		var out []*yaml.Node
		given := map[string]int{} // line of each key
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if first, ok := given[k.Value]; ok {
				return nil, &lineError{line: k.Line, err: fmt.Errorf("%s: %s is given twice (first at line %d): give it once", bare(key), bare(k.Value), first)}
			}
			given[k.Value] = k.Line
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: value of %s must be a string", bare(key), bare(k.Value))
			}
			kv := k.Value
			if v.Tag != "!!null" {
				kv += "=" + v.Value
			}
			out = append(out, &yaml.Node{Kind: yaml.ScalarNode, Value: kv, Line: k.Line})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: unsupported value", bare(key))
}

// flagName returns the long name of the option key, which may be a
// shorthand ("p" for "publish").
func flagName(flags *pflag.FlagSet, key string) string {
	if flags != nil && len(key) == 1 {
		if f := flags.ShorthandLookup(key); f != nil {
			return f.Name
		}
	}
	return key
}

func checkSetting(flags *pflag.FlagSet, special func(string, string) (bool, error), key, value string) error {
	if special != nil {
		handled, err := special(key, value)
		if handled || err != nil {
			return parserError(err, value)
		}
	}
	if flags == nil {
		return nil
	}
	f := flags.Lookup(flagName(flags, key))
	if f == nil || f.Name == "help" || f.Name == "detach" {
		if f != nil {
			return fmt.Errorf("%s cannot be set in a preset: give it on the command line", key)
		}
		if s := suggest(flags, key); s != "" {
			return fmt.Errorf("unknown docker run option %s: did you mean %q?", Echo(key), s)
		}
		return fmt.Errorf("unknown docker run option %s (see 'docker run --help' for the option names)", Echo(key))
	}
	if err := f.Value.Set(value); err != nil {
		return fmt.Errorf("invalid value %s for %s: %w", Echo(value), key, parserError(valueError(f, value, err), value))
	}
	return nil
}

// suggest returns the option name closest to key, or "" when none is close.
func suggest(flags *pflag.FlagSet, key string) string {
	norm := strings.ToLower(strings.ReplaceAll(strings.TrimLeft(key, "-"), "_", "-"))
	// No option name is within reach of a longer key (see the distance
	// bound below), and the distance takes time in its length.
	if len(norm) > 64 {
		return ""
	}
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		cands = append(cands, cand{f.Name, levenshtein(norm, f.Name)})
	})
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].d != cands[j].d {
			return cands[i].d < cands[j].d
		}
		return cands[i].name < cands[j].name
	})
	// An option that the key begins ("shm" for "shm-size") is the likeliest.
	for _, c := range cands {
		if len(norm) >= 3 && strings.HasPrefix(c.name, norm) {
			return c.name
		}
	}
	if len(cands) == 0 || cands[0].d > max(2, len(norm)/3) {
		return ""
	}
	return cands[0].name
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
