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
// is skipped; one that exists but cannot be read is an error, and so is one
// larger than 1 MiB. It checks every preset's extends chain, in time linear
// in the number of presets.
func Load(builtin []byte, files []File, opts Options) (*Store, error) {
	s := &Store{presets: map[string]*Preset{}}
	if opts.Flags != nil {
		// One flag set checks every setting: Set only accumulates values,
		// which nobody reads, and building docker's commands costs time.
		flags := opts.Flags()
		opts.Flags = func() *pflag.FlagSet { return flags }
	}
	if err := s.parse(builtin, File{Source: SourceBuiltin}, opts); err != nil {
		return nil, fmt.Errorf("built-in presets: %w", err)
	}
	for _, f := range files {
		data, err := readFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := s.parse(data, f, opts); err != nil {
			return nil, err
		}
	}
	if err := s.checkChains(); err != nil {
		return nil, err
	}
	return s, nil
}

// readFile reads the preset file at path, refusing one larger than
// maxFileSize before reading it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading preset file: %w", err)
	}
	defer f.Close()
	tooLarge := func(size string) error {
		return fmt.Errorf("%s: preset file is %s bytes; the limit is 1 MiB: remove the presets you do not use, or move them to a file of their own", path, size)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxFileSize {
		return nil, tooLarge(strconv.FormatInt(fi.Size(), 10))
	}
	// A file that grows, or is no regular file, is cut at the limit.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading preset file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, tooLarge(fmt.Sprintf("more than %d", maxFileSize))
	}
	return data, nil
}

func (s *Store) parse(data []byte, f File, opts Options) error {
	where := func(line int) string {
		if f.Path == "" {
			return fmt.Sprintf("line %d", line)
		}
		return fmt.Sprintf("%s:%d", f.Path, line)
	}
	notYAML := func(err error) error {
		err = parserError(err, "")
		if f.Path == "" {
			return fmt.Errorf("not valid YAML: %w", err)
		}
		return fmt.Errorf("%s: not valid YAML: %w", f.Path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil // empty file
	} else if err != nil {
		return notYAML(err)
	}
	// A file is one document: presets after a "---" would be ignored.
	if err := dec.Decode(&next); err == nil {
		return fmt.Errorf("%s: a second YAML document starts here: a preset file is one document; remove this \"---\" line, or the presets after it", where(next.Line))
	} else if err != io.EOF {
		return notYAML(err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: expected a mapping of preset names to presets", where(root.Line))
	}
	defined := map[string]int{} // line of each preset name in this file
	for i := 0; i+1 < len(root.Content); i += 2 {
		nameNode, body := root.Content[i], root.Content[i+1]
		p := &Preset{Name: nameNode.Value, Source: f.Source, File: f.Path, Line: nameNode.Line}
		if p.Name == "" || strings.ContainsAny(p.Name, " \t,") {
			return fmt.Errorf("%s: invalid preset name %s: use letters, digits, '-', '_' or '.'", where(nameNode.Line), Echo(p.Name))
		}
		if first, ok := defined[p.Name]; ok {
			return fmt.Errorf("%s: preset %s is defined twice in this file (first at line %d): keep one of them, or rename one", where(nameNode.Line), Echo(p.Name), first)
		}
		defined[p.Name] = nameNode.Line
		if body.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: preset %s: expected a mapping of docker run options to values", where(body.Line), Echo(p.Name))
		}
		if err := p.parseBody(body, opts); err != nil {
			var le *lineError
			if errors.As(err, &le) {
				return fmt.Errorf("%s: preset %s: %w", where(le.line), Echo(p.Name), le.err)
			}
			return fmt.Errorf("%s: preset %s: %w", where(body.Line), Echo(p.Name), err)
		}
		s.presets[p.Name] = p
	}
	return nil
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
		own := name == "training" || name == "description" || name == "extends"
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

// setOwn reads a preset's own key: training, description, extends.
func (p *Preset) setOwn(key string, val *yaml.Node) error {
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
		return fmt.Errorf("invalid value %s for %s: %w", Echo(value), key, parserError(err, value))
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
