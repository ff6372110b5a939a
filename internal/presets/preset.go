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
	// Open is the container port of a web page the preset's server offers
	// ("8888"): a detached run prints its URL; "" inherits it through
	// Extends.
	Open     string
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
	// unavailable holds the presets that need a file set aside, by name.
	unavailable map[string]error
	setAside    []*FileError
	// unread are the files set aside whose preset names are unknown.
	unread []*FileError
	origin map[*Preset]int // index of the file that defines each preset; 0 for built-in
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

// Get returns the preset called name; an *UnavailableError when it needs a
// preset file that was set aside.
func (s *Store) Get(name string) (*Preset, error) {
	if err, ok := s.unavailable[name]; ok {
		return nil, err
	}
	p, ok := s.presets[name]
	if !ok {
		if len(s.unread) > 0 {
			return nil, &UnavailableError{Name: name, Maybe: true, File: s.unread[0]}
		}
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

// Open is the container port of the web page the named presets offer (see
// Preset.Open): the first preset's own, else the nearest up its chain; ""
// when none does.
func (s *Store) Open(names ...string) string {
	for _, name := range names {
		p, ok := s.presets[name]
		for steps := 0; ok && steps <= len(s.presets); steps++ {
			if p.Open != "" {
				return p.Open
			}
			p, ok = s.presets[p.Extends]
		}
	}
	return ""
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
			return nil, fmt.Errorf("%s: %w", p.Where(), s.unknownParent(p))
		}
		if len(chain) == maxExtendsDepth {
			// Load refused longer chains and cycles; a store it did not
			// check gets its message.
			if ce := s.checkChains(); ce != nil {
				return nil, fmt.Errorf("%s: %w", ce.p.Where(), ce.err)
			}
			return nil, fmt.Errorf("%s: extends chain is longer than %d presets", chain[0].Where(), maxExtendsDepth)
		}
		chain = append(chain, parent)
		p = parent
	}
	return chain, nil
}

// chainError is an extends chain that fails at preset p.
type chainError struct {
	p   *Preset
	err error
}

// checkChains checks every preset's extends chain: it ends, within
// maxExtendsDepth presets, in a preset that extends none. A chain that
// needs a preset file set aside makes its presets unavailable. Each preset
// is walked once (a depth-first search with three colours), so it takes
// time linear in the number of presets.
func (s *Store) checkChains() *chainError {
	const (
		unseen = iota
		onPath // on the chain being walked
		done   // checked: its depth and root are known
		needs  // needs a file set aside: unavailable
	)
	if s.unavailable == nil {
		s.unavailable = map[string]error{}
	}
	state := make(map[string]int, len(s.presets))
	depth := make(map[string]int, len(s.presets))
	root := make(map[string]string, len(s.presets))
	// unavailable marks every preset of path unavailable: its chain goes
	// on through rest, to a preset that a file set aside defines.
	unavailable := func(path []*Preset, rest []string, file *FileError, maybe bool) {
		for k, q := range path {
			chain := make([]string, 0, len(path)-k+len(rest))
			for _, r := range path[k:] {
				chain = append(chain, r.Name)
			}
			state[q.Name] = needs
			s.unavailable[q.Name] = &UnavailableError{Name: q.Name, Chain: append(chain, rest...), Maybe: maybe, File: file}
		}
	}
	for _, name := range s.Names() {
		var path []*Preset
		d, r := 0, ""
		for cur := name; ; {
			p, ok := s.presets[cur]
			if !ok {
				if err, ok := s.unavailable[cur].(*UnavailableError); ok {
					unavailable(path, []string{cur}, err.File, err.Maybe)
					path = nil
					break
				}
				if len(s.unread) > 0 {
					unavailable(path, []string{cur}, s.unread[0], true)
					path = nil
					break
				}
				return &chainError{p: path[len(path)-1], err: s.unknownParent(path[len(path)-1])}
			}
			if state[cur] == needs {
				err := s.unavailable[cur].(*UnavailableError)
				unavailable(path, err.Chain, err.File, err.Maybe)
				path = nil
				break
			}
			if state[cur] == done {
				d, r = depth[cur], root[cur]
				break
			}
			if state[cur] == onPath {
				var names []string
				var culprit *Preset
				for _, q := range path[pathIndex(path, cur):] {
					names = append(names, q.Name)
					// The cycle is the fault of its last file.
					if culprit == nil || s.origin[q] > s.origin[culprit] {
						culprit = q
					}
				}
				return &chainError{p: culprit, err: fmt.Errorf("extends cycle: %s", chainText(rotate(names, culprit.Name)))}
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
				return &chainError{p: p, err: tooDeep(p, r)}
			}
			state[p.Name], depth[p.Name], root[p.Name] = done, d, r
		}
	}
	for name := range s.unavailable {
		delete(s.presets, name)
	}
	return nil
}

// pathIndex returns the index of the preset called name on path.
func pathIndex(path []*Preset, name string) int {
	for i, p := range path {
		if p.Name == name {
			return i
		}
	}
	return 0
}

// rotate returns the cycle names, starting at first, closed: "b c a b".
func rotate(names []string, first string) []string {
	i := 0
	for k, n := range names {
		if n == first {
			i = k
			break
		}
	}
	out := append(append([]string{}, names[i:]...), names[:i]...)
	return append(out, first)
}

// unknownParent is the error for preset p, which extends no known preset.
func (s *Store) unknownParent(p *Preset) error {
	return fmt.Errorf("extends unknown preset %s (known: %s)", Echo(p.Extends), knownList(s.Names()))
}

// tooDeep is the error for preset p, whose extends chain down to root is
// longer than maxExtendsDepth.
func tooDeep(p *Preset, root string) error {
	return fmt.Errorf("extends chain %s is %d presets long; the limit is %d: shorten it, repeating a few settings instead of extending",
		chainText([]string{p.Name, p.Extends, "…", root}), maxExtendsDepth+1, maxExtendsDepth)
}
