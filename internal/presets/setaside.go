package presets

import (
	"errors"
	"fmt"
	"strings"
)

// FileError is a preset file that did not load: Load sets it aside, and
// its presets are unavailable.
type FileError struct {
	Path string
	Line int // 0 when the error is not at a line
	Err  error
	// names are the preset names the file defines, nil when it could not
	// be read that far.
	names map[string]bool
}

// newFileError is the error of the preset file at path, parse's err placed
// at its line.
func newFileError(path string, names map[string]bool, err error) *FileError {
	fe := &FileError{Path: path, Err: err, names: names}
	var le *lineError
	if errors.As(err, &le) {
		fe.Line, fe.Err = le.line, le.err
	}
	return fe
}

// Error is "PATH:LINE: what is wrong", as editors and compilers name a
// place in a file.
func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Detail is the error without the path: "line LINE: what is wrong".
func (e *FileError) Detail() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

// SetAsideError lists the preset files that Load set aside, in the order
// they are read.
type SetAsideError struct {
	Files []*FileError
}

func (e *SetAsideError) Error() string {
	msgs := make([]string, len(e.Files))
	for i, f := range e.Files {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each *FileError.
func (e *SetAsideError) Unwrap() []error {
	errs := make([]error, len(e.Files))
	for i, f := range e.Files {
		errs[i] = f
	}
	return errs
}

// UnavailableError is returned for a preset that needs a preset file that
// was set aside: the file defines it, or a preset of its extends chain, or
// may do so (it could not be read far enough to tell).
type UnavailableError struct {
	Name string
	// Chain is the extends chain from Name to the preset the file
	// defines; nil when the file defines Name itself.
	Chain []string
	// Maybe is true when the file could not be read far enough to tell
	// whether it defines the preset.
	Maybe bool
	File  *FileError
}

func (e *UnavailableError) Error() string {
	needed := Echo(e.Name)
	prefix := "preset " + needed
	if len(e.Chain) > 1 {
		needed = Echo(e.Chain[len(e.Chain)-1])
		prefix = fmt.Sprintf("preset %s extends %s, and %s", Echo(e.Name), chainText(e.Chain[1:]), needed)
	}
	if e.Maybe {
		return fmt.Sprintf("%s is unknown, and a preset file that may define it did not load: %v", prefix, e.File)
	}
	return fmt.Sprintf("%s is in a preset file that did not load: %v", prefix, e.File)
}

func (e *UnavailableError) Unwrap() error { return e.File }

// SetAside returns the preset files that did not load, in the order they
// are read.
func (s *Store) SetAside() []*FileError { return s.setAside }

func (s *Store) setAsideErr() error {
	if len(s.setAside) == 0 {
		return nil
	}
	return &SetAsideError{Files: s.setAside}
}
