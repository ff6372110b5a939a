// Package presets holds named sets of docker run options: the built-in
// presets, the preset files of the site and of the user, the rule that merges
// presets with the user's own flags (the user always wins), and the rendering
// of the result as docker run arguments.
package presets

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
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
	return fmt.Sprintf("%s:%d: preset %q", p.File, p.Line, p.Name)
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
	return fmt.Sprintf("unknown preset %q: known presets are %s (see 'docker perceptron presets ls')", e.Name, strings.Join(e.Known, ", "))
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
// of Merge.
func (s *Store) Expand(names ...string) ([]Setting, error) {
	var out []Setting
	for _, name := range names {
		settings, err := s.expand(name, nil)
		if err != nil {
			return nil, err
		}
		out = Merge(out, settings)
	}
	return out, nil
}

// Training reports whether any of the named presets is meant for training:
// its own "training" key, else the nearest one up its extends chain.
func (s *Store) Training(names ...string) bool {
	for _, name := range names {
		seen := map[string]bool{}
		for p, err := s.Get(name); err == nil && !seen[p.Name]; p, err = s.Get(p.Extends) {
			seen[p.Name] = true
			if p.Training != nil {
				if *p.Training {
					return true
				}
				break
			}
		}
	}
	return false
}

func (s *Store) expand(name string, seen []string) ([]Setting, error) {
	p, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if slices.Contains(seen, name) {
		return nil, fmt.Errorf("%s: extends cycle: %s -> %s", p.Where(), strings.Join(seen, " -> "), name)
	}
	if p.Extends == "" {
		return p.Settings, nil
	}
	base, err := s.expand(p.Extends, append(seen, name))
	if err != nil {
		var unknown *UnknownPresetError
		if errors.As(err, &unknown) && unknown.Name == p.Extends {
			return nil, fmt.Errorf("%s: extends unknown preset %q (known: %s)", p.Where(), p.Extends, strings.Join(unknown.Known, ", "))
		}
		return nil, err
	}
	return Merge(base, p.Settings), nil
}
