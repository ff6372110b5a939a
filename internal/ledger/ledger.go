// Package ledger keeps GPU claims consistent across every invocation of the
// plugin on a host, by any user: a host-wide lock, short leases on GPUs chosen
// for containers that do not exist yet, and a FIFO queue for those waiting for
// GPUs to free up.
//
// Once a container exists, Docker is the ledger (the claim rides on it as a
// label) and its lease is released; leases only cover the window between
// choosing GPUs and creating the container.
//
// Everything lives in one state directory shared by all users (see StateDir).
// Other users can write there, including users without access to Docker, so
// no file in it is trusted:
//
//   - nothing is opened through a symlink, only regular files are read, and
//     a file that cannot be parsed is ignored;
//   - the user behind a lease or ticket is the file's owner, not what the
//     file says;
//   - a lease or ticket counts only while the process it names is alive (not
//     a zombie), started when the file says (a reused PID does not count),
//     belongs to the file's owner, and is the plugin's core binary
//     (perceptron-core: its comm, and its executable where this user can
//     read it);
//   - a lease counts at most DefaultLeaseTTL after its file was last written,
//     by the file's ctime, which the kernel sets, whatever expiry it claims;
//     renewing a lease writes a new file;
//   - Lock waits at most LockTimeout, then names who holds the lock.
//
// The directory itself must be a real directory owned by root or by the
// caller, and when world-writable also sticky (as /tmp is: only a file's
// owner, and the directory's, can remove it). A missing directory is created
// by whoever comes first, mode 1777, as before; but since the directory's
// owner can remove any claim in it, one created by an ordinary user serves
// only that user (and is refused by everyone else, root included, with a
// message saying how to get a shared one). On a host shared by several users
// the directory should therefore be created by root, before anyone else
// does: a user who creates DefaultStateDir first locks the others out of it
// until it is removed.
//
// The directory must be local to the host: liveness is judged by PID, and a
// lease's "host" field is ignored. Where /proc is mounted with hidepid, other
// users' processes cannot be checked: their leases then count (at most
// DefaultLeaseTTL after each write) and their tickets do not.
package ledger

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvStateDir names the environment variable that overrides the state
// directory (see StateDir).
const EnvStateDir = "PERCEPTRON_STATE_DIR"

// SystemStateDir is the state directory of a system install
// (`sudo ./install.sh --system`): made by root, mode 1777, and again at every
// boot by systemd-tmpfiles. Under /run no ordinary user can make it first.
const SystemStateDir = "/run/docker-perceptron"

// DefaultStateDir is the state directory without a system install. /tmp is
// the one directory every user can write without root; the first invocation
// creates it with mode 1777. One made by an ordinary user serves that user
// only (see the package doc).
const DefaultStateDir = "/tmp/docker-perceptron"

// maxFileSize bounds what is read from a lease or ticket file.
const maxFileSize = 64 << 10

// StateDir returns $PERCEPTRON_STATE_DIR; else SystemStateDir when it exists
// (a system install); else DefaultStateDir.
func StateDir() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	if fi, err := os.Lstat(SystemStateDir); err == nil && fi.IsDir() {
		return SystemStateDir
	}
	return DefaultStateDir
}

// ErrUnsafeDir is returned (wrapped) when the state directory is not one we
// can trust: a symlink, not a directory, owned by another user than root or
// the caller, or writable by others without the sticky bit.
var ErrUnsafeDir = errors.New("unsafe state directory")

// openDir opens dir without following a symlink at its last element (the
// elements above are trusted, as /tmp is) and checks it is safe to keep claims
// in. With create, a missing dir is made with mode 1777. All file operations
// then go through the returned descriptor, so dir cannot be swapped for
// another under us. It returns (nil, nil) when dir is missing and !create.
func openDir(dir string, create bool) (*os.File, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no directory given", ErrUnsafeDir)
	}
	made := false
	if create {
		// Mkdir applies the umask; the mode is set below, on the
		// descriptor, so a symlink swapped in between cannot redirect it.
		switch err := unix.Mkdir(dir, 0o700); {
		case err == nil:
			made = true
		case errors.Is(err, unix.EEXIST):
		default:
			return nil, fmt.Errorf("creating state directory: %w", &os.PathError{Op: "mkdir", Path: dir, Err: err})
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT) && !create:
		return nil, nil
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
		// Linux answers ENOTDIR for a symlink opened with O_DIRECTORY.
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %s is a symlink", ErrUnsafeDir, dir)
		}
		return nil, fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, dir)
	case err != nil:
		return nil, fmt.Errorf("opening state directory: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	f := os.NewFile(uintptr(fd), dir)
	if made {
		if err := unix.Fchmod(fd, 0o777|unix.S_ISVTX); err != nil {
			f.Close()
			return nil, fmt.Errorf("sharing state directory %s: %w", dir, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	if err := checkDir(dir, &st, uint32(os.Geteuid())); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkDir decides whether a directory may hold claims (see JudgeDir).
func checkDir(dir string, st *unix.Stat_t, uid uint32) error {
	switch JudgeDir(fs.FileMode(st.Mode&0o777)|modeBits(st.Mode), st.Uid, uid) {
	case DirNotSticky:
		return fmt.Errorf("%w: %s is world-writable without the sticky bit (anyone could remove or replace claims); run chmod 1777 %s", ErrUnsafeDir, dir, dir)
	case DirForeign:
		return fmt.Errorf("%w: %s belongs to user %d: GPU claims trust only a directory of root's or yours; "+
			"ask an administrator to run `sudo ./install.sh --system` (a root-owned shared directory) or set %s to a directory of your own",
			ErrUnsafeDir, dir, st.Uid, EnvStateDir)
	}
	return nil
}

// modeBits turns stat's sticky, setgid and setuid bits into fs.FileMode's.
func modeBits(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&unix.S_ISVTX != 0 {
		out |= fs.ModeSticky
	}
	if m&unix.S_ISGID != 0 {
		out |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		out |= fs.ModeSetuid
	}
	return out
}

// fileMeta is what the kernel, not the file's writer, says about a file.
type fileMeta struct {
	uid   uint32    // owner
	ctime time.Time // last change of content or inode: cannot be set by utimes
}

// removeFile removes name from dir (one already gone is no error); doing
// says what for, in the error.
func removeFile(dir, name, doing string) error {
	d, err := openDir(dir, false)
	if d == nil || err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: %w", doing, &os.PathError{Op: "remove", Path: dir + "/" + name, Err: err})
	}
	return nil
}

// readFile reads the regular file name in dir without following symlinks or
// blocking on a FIFO, and returns its content, owner and ctime.
func readFile(dir *os.File, name string) ([]byte, fileMeta, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fileMeta{}, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fileMeta{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fileMeta{}, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size > maxFileSize {
		return nil, fileMeta{}, fmt.Errorf("%s is too large (%d bytes)", name, st.Size)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize))
	return b, fileMeta{uid: st.Uid, ctime: time.Unix(st.Ctim.Unix())}, err
}

// wallClock is the clock that file ctimes are compared with: the kernel's,
// not the caller's now. A variable so that tests can age files.
var wallClock = time.Now

// createFile atomically creates name in dir holding data, readable by all:
// it is written under a temporary name and hard-linked into place, so readers
// never see it half written and an existing name fails with EEXIST.
func createFile(dir *os.File, name string, data []byte) error {
	dfd := int(dir.Fd())
	tmp := ".tmp-" + newToken()
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: tmp, Err: err}
	}
	defer unix.Unlinkat(dfd, tmp, 0) //nolint:errcheck // the link, if made, is what counts
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = unix.Fchmod(fd, 0o644) // the umask must not hide claims from other users
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := unix.Linkat(dfd, tmp, dfd, name, 0); err != nil {
		return &os.PathError{Op: "link", Path: name, Err: err}
	}
	return nil
}

// listNames returns the names in dir that start with prefix.
func listNames(dir *os.File, prefix string) ([]string, error) {
	// Read through a fresh descriptor: a directory's read offset is shared
	// and would be at the end after a first listing.
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir.Name(), err)
	}
	d := os.NewFile(uintptr(fd), dir.Name())
	defer d.Close()
	all, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir.Name(), err)
	}
	var names []string
	for _, n := range all {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}
