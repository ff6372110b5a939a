package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// DirProblem is what makes a state directory unfit to hold claims.
type DirProblem int

const (
	// DirOK: claims may be kept there.
	DirOK DirProblem = iota
	// DirNotSticky: world-writable without the sticky bit, so anyone
	// could remove or replace other users' claims.
	DirNotSticky
	// DirForeign: another ordinary user owns it; its owner could remove
	// our claims, whatever its mode.
	DirForeign
)

// JudgeDir is the rule for a state directory with mode and owner, as seen
// by the user euid: it must be owned by root or by that user (a directory's
// owner can remove any file in it, so another user's directory is not trusted
// even when shared like /tmp), and when world-writable it must be sticky as
// /tmp is, so that only a file's owner can remove it.
func JudgeDir(mode fs.FileMode, owner, euid uint32) DirProblem {
	worldWritable := mode.Perm()&0o002 != 0
	sticky := mode&fs.ModeSticky != 0
	switch {
	case worldWritable && !sticky:
		return DirNotSticky
	case owner == euid || owner == 0:
		return DirOK
	}
	return DirForeign
}

// DirState is what the state directory is, read without following a
// symlink as the claims do: for `docker perceptron doctor`.
type DirState struct {
	Path    string
	Exists  bool
	Symlink bool
	IsDir   bool
	Mode    fs.FileMode
	UID     int   // owner; -1 unknown
	Err     error // lstat failed for another reason than absence
	// NoAccess: it exists but this user cannot make files in it (no write
	// or search permission), so cannot take the lock there.
	NoAccess bool
	// CanCreate: it does not exist and this user can create it (the claims
	// make only its last element, as this does).
	CanCreate bool
}

// StatDir reads the state directory at path.
func StatDir(path string) DirState {
	s := DirState{Path: path, UID: -1}
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		s.Exists, s.IsDir, s.Mode = true, fi.IsDir(), fi.Mode()
		s.Symlink = fi.Mode()&fs.ModeSymlink != 0
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.UID = int(st.Uid)
		}
		if s.IsDir {
			// The kernel's answer: groups, ACLs, read-only mounts and root
			// included.
			s.NoAccess = unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK|unix.X_OK, unix.AT_EACCESS) != nil
		}
	case errors.Is(err, fs.ErrNotExist):
		// Try for real: permission bits alone do not tell about ACLs,
		// read-only mounts or root.
		if tmp, err := os.MkdirTemp(filepath.Dir(path), ".perceptron-doctor-"); err == nil {
			s.CanCreate = true
			_ = os.Remove(tmp)
		}
	default:
		s.Err = err
	}
	return s
}

// Problem judges an existing directory for this user (see JudgeDir).
func (s DirState) Problem() DirProblem {
	return JudgeDir(s.Mode, uint32(s.UID), uint32(os.Geteuid()))
}

// Shared reports whether every user can take locks and leases there: others
// may write and search it (JudgeDir then requires the sticky bit).
func (s DirState) Shared() bool { return s.Mode.Perm()&0o003 == 0o003 }

// ModeString is the octal mode as chmod takes it, "1777".
func (s DirState) ModeString() string {
	v := uint32(s.Mode.Perm())
	if s.Mode&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	if s.Mode&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if s.Mode&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	return fmt.Sprintf("%04o", v)
}
