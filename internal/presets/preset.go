// Package presets holds named sets of docker run options: the built-in
// presets, the preset files of the site and of the user, the rule that merges
// presets with the user's own flags (the user always wins), and the rendering
// of the result as docker run arguments.
package presets

import (
	"fmt"
	"sort"
)

// Source tells where a preset was defined.
type Source string

// The sources, in the order they are read; a later definition of a name
// replaces an earlier one.
const (
	SourceBuiltin Source = "built-in"
	SourceSystem  Source = "system"
	SourceUser    Source = "user"
)

// Setting is one docker run option: its long name without dashes and one
// value, as it would be given on the command line ("shm-size", "1g").
// Repeated options ("ulimit", "env") are one Setting per value.
type Setting struct {
	Flag  string
	Value string
	Line  int // line in the preset file; 0 for settings that do not come from a file
}

// Preset is a named list of settings.
type Preset struct {
	Name        string
	Description string
	Extends     string
	// Training marks a preset for training jobs (DataLoader workers share
	// batches through /dev/shm); nil inherits it through Extends.
	Training *bool
	Source   Source
	File     string // "" for built-in presets
	Line     int
	Settings []Setting
}

// Where names the preset's definition for error messages.
func (p *Preset) Where() string {
	if p.File == "" {
		return "built-in preset " + p.Name
	}
	return fmt.Sprintf("%s:%d: preset %s", p.File, p.Line, Echo(p.Name))
}

// Store is the set of known presets.
type Store struct {
	presets map[string]*Preset
}

// Names returns the known preset names, sorted.
func (s *Store) Names() []string {
	names := make([]string, 0, len(s.presets))
	for n := range s.presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// List returns the known presets, sorted by name.
func (s *Store) List() []*Preset {
	var out []*Preset
	for _, n := range s.Names() {
		out = append(out, s.presets[n])
	}
	return out
}

// UnknownPresetError is returned for a preset name that is not defined.
type UnknownPresetError struct {
	Name  string
	Known []string
}

func (e *UnknownPresetError) Error() string {
	return fmt.Sprintf("unknown preset %s: known presets are %s (see 'docker perceptron presets ls')", Echo(e.Name), knownList(e.Known))
}

// Get returns the preset called name.
func (s *Store) Get(name string) (*Preset, error) {
	p, ok := s.presets[name]
	if !ok {
		return nil, &UnknownPresetError{Name: name, Known: s.Names()}
	}
	return p, nil
}

// Expand returns the settings of the named presets, in order, each preset's
// "extends" chain first. Later settings override earlier ones by the rules
// of Merge. It takes time linear in the settings of the chains.
func (s *Store) Expand(names ...string) ([]Setting, error) {
	var out []Setting
	for _, name := range names {
		chain, err := s.chain(name)
		if err != nil {
			return nil, err
		}
		levels := make([][]Setting, len(chain))
		for i, p := range chain {
			levels[len(chain)-1-i] = p.Settings
		}
		out = Merge(out, mergeChain(levels))
	}
	return out, nil
}

// Training reports whether any of the named presets is meant for training:
// its own "training" key, else the nearest one up its extends chain.
func (s *Store) Training(names ...string) bool {
	for _, name := range names {
		p, ok := s.presets[name]
		// Load refused cycles; the bound is for a store it did not check.
		for steps := 0; ok && steps <= len(s.presets); steps++ {
			if p.Training != nil {
				if *p.Training {
					return true
				}
				break
			}
			p, ok = s.presets[p.Extends]
		}
	}
	return false
}

// chain returns the preset called name and those it extends, nearest
// first.
func (s *Store) chain(name string) ([]*Preset, error) {
	p, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	chain := []*Preset{p}
	for p.Extends != "" {
		parent, ok := s.presets[p.Extends]
		if !ok {
			return nil, s.unknownParent(p)
		}
		if len(chain) == maxExtendsDepth {
			// Load refused longer chains and cycles; a store it did not
			// check gets its message.
			if err := s.checkChains(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: extends chain is longer than %d presets", chain[0].Where(), maxExtendsDepth)
		}
		chain = append(chain, parent)
		p = parent
	}
	return chain, nil
}

// checkChains checks every preset's extends chain: it ends, within
// maxExtendsDepth presets, in a preset that extends none. Each preset is
// walked once (a depth-first search with three colours), so it takes time
// linear in the number of presets.
func (s *Store) checkChains() error {
	const (
		unseen = iota
		onPath // on the chain being walked
		done   // checked: its depth and root are known
	)
	state := make(map[string]int, len(s.presets))
	depth := make(map[string]int, len(s.presets))
	root := make(map[string]string, len(s.presets))
	for _, name := range s.Names() {
		var path []*Preset
		d, r := 0, ""
		for cur := name; ; {
			p, ok := s.presets[cur]
			if !ok {
				return s.unknownParent(path[len(path)-1])
			}
			if state[cur] == done {
				d, r = depth[cur], root[cur]
				break
			}
			if state[cur] == onPath {
				names := make([]string, 0, len(path)+1)
				for _, q := range path {
					names = append(names, q.Name)
				}
				return fmt.Errorf("%s: extends cycle: %s", p.Where(), chainText(append(names, cur)))
			}
			state[cur] = onPath
			path = append(path, p)
			if p.Extends == "" {
				r = cur
				break
			}
			cur = p.Extends
		}
		for i := len(path) - 1; i >= 0; i-- {
			p := path[i]
			d++
			if d > maxExtendsDepth {
				return tooDeep(p, r)
			}
			state[p.Name], depth[p.Name], root[p.Name] = done, d, r
		}
	}
	return nil
}

// unknownParent is the error for preset p, which extends no known preset.
func (s *Store) unknownParent(p *Preset) error {
	return fmt.Errorf("%s: extends unknown preset %s (known: %s)", p.Where(), Echo(p.Extends), knownList(s.Names()))
}

// tooDeep is the error for preset p, whose extends chain down to root is
// longer than maxExtendsDepth.
func tooDeep(p *Preset, root string) error {
	return fmt.Errorf("%s: extends chain %s is %d presets long; the limit is %d: shorten it, repeating a few settings instead of extending",
		p.Where(), chainText([]string{p.Name, p.Extends, "…", root}), maxExtendsDepth+1, maxExtendsDepth)
}
