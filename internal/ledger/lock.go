package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const lockName = "lock"

// LockTimeout is how long Lock waits for the lock at most. The lock is held
// for milliseconds, so a holder that keeps it this long is stuck, or holds it
// on purpose (any user can take it) to block every claim.
const LockTimeout = 30 * time.Second

// lockTimeout is LockTimeout; a variable so that tests can shorten it.
var lockTimeout = LockTimeout

// LockHeldError is returned by Lock when another process kept the lock for
// LockTimeout. It names the holder as far as /proc/locks and /proc tell.
type LockHeldError struct {
	Path    string        // the lock file
	Waited  time.Duration // how long Lock waited
	PID     int           // the holder; 0 when unknown
	Command string        // its name (comm); "" when unknown
	UID     int           // its user; -1 when unknown
	User    string        // that user's name; "" when unknown
}

func (e *LockHeldError) Error() string {
	var who string
	switch {
	case e.PID <= 0:
		who = "a process that cannot be identified"
	case e.Command != "":
		who = fmt.Sprintf("process %d (%s)", e.PID, e.Command)
	default:
		who = fmt.Sprintf("process %d", e.PID)
	}
	switch {
	case e.User != "":
		who += fmt.Sprintf(" of user %s (uid %d)", e.User, e.UID)
	case e.UID >= 0:
		who += fmt.Sprintf(" of uid %d", e.UID)
	}
	return fmt.Sprintf("the GPU claim lock %s has been held for over %s by %s; it is normally held for milliseconds, "+
		"so that process is stuck or blocking GPU claims on purpose: ask its user or an administrator to end it",
		e.Path, e.Waited.Round(time.Millisecond), who)
}

// Lock takes the host-wide lock in dir, creating dir (mode 1777) and the lock
// file as needed, and waits for it until ctx is done (then it returns an
// error wrapping ctx's) or for LockTimeout (then a *LockHeldError), whichever
// comes first. unlock releases it and may be called more than once. The lock is an flock(2) on dir/lock, so the
// kernel releases it if the holder dies; it excludes other processes and
// other Lock calls in this one alike.
//
// Hold it only around "read the inventory and holders, choose, write the
// lease" (and around renewing a lease): the lease, not the lock, keeps the
// GPUs claimed until the container exists, so the lock is never held while
// a container is created.
func Lock(ctx context.Context, dir string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := openDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, err := openLockFile(d)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	if err := waitLock(ctx, f); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			unix.Flock(fd, unix.LOCK_UN) //nolint:errcheck // closing releases it anyway
			f.Close()
		})
	}, nil
}

// waitLock takes the flock on f, waiting for it in a blocking flock(2): the
// kernel hands it over the moment its holder lets it go (the lock is held
// for milliseconds, and a waiter that polled would leave it idle while
// others queue). It gives up when ctx is done or after lockTimeout; f is
// closed then, once the abandoned flock call returns.
func waitLock(ctx context.Context, f *os.File) error {
	fd := int(f.Fd())
	err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
		f.Close()
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	got := make(chan error, 1)
	go func() { got <- flockRetry(fd) }()
	abandon := func() {
		go func() {
			if <-got == nil {
				unix.Flock(fd, unix.LOCK_UN) //nolint:errcheck // closing releases it anyway
			}
			f.Close()
		}()
	}
	waited := lockTimeout
	t := time.NewTimer(waited)
	defer t.Stop()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		return nil
	case <-ctx.Done():
		abandon()
		return fmt.Errorf("waiting for the GPU claim lock %s: %w", f.Name(), context.Cause(ctx))
	case <-t.C:
		held := lockHeld(f, waited)
		abandon()
		return held
	}
}

// flockRetry is a blocking exclusive flock, retried when a signal
// interrupts it.
func flockRetry(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// openLockFile opens (or creates) the lock file read-only: flock needs no
// write access, so a lock file created by one user serves all. It opens an
// existing file without O_CREAT, which fs.protected_regular refuses for
// another user's file in a sticky directory.
func openLockFile(d *os.File) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	path := d.Name() + "/" + lockName
	for range 10 {
		fd, err := unix.Openat(int(d.Fd()), lockName, flags, 0)
		if errors.Is(err, unix.ENOENT) {
			fd, err = unix.Openat(int(d.Fd()), lockName, flags|unix.O_CREAT|unix.O_EXCL, 0o644)
			if errors.Is(err, unix.EEXIST) {
				continue // another invocation created it first
			}
			if err == nil {
				err = unix.Fchmod(fd, 0o644) // readable by all despite the umask
			}
		}
		switch {
		case errors.Is(err, unix.ELOOP):
			return nil, fmt.Errorf("%w: lock file %s is a symlink; remove it", ErrUnsafeDir, path)
		case err != nil:
			if fd >= 0 {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("opening lock file: %w", &os.PathError{Op: "open", Path: path, Err: err})
		}
		f := os.NewFile(uintptr(fd), path)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock file %s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			f.Close()
			return nil, fmt.Errorf("%w: lock file %s is not a regular file; remove it", ErrUnsafeDir, path)
		}
		return f, nil
	}
	return nil, fmt.Errorf("opening lock file %s: it keeps appearing and disappearing", path)
}

// lockHeld describes who holds lock file f, from /proc/locks (readable by
// all) and the holder's /proc entry.
func lockHeld(f *os.File, waited time.Duration) *LockHeldError {
	e := &LockHeldError{Path: f.Name(), Waited: waited, UID: -1}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return e
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return e
	}
	e.PID = flockHolder(locks, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	if e.PID <= 0 {
		return e
	}
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(e.PID) + "/comm"); err == nil {
		e.Command = strings.TrimSuffix(string(comm), "\n")
	}
	if status, err := os.ReadFile("/proc/" + strconv.Itoa(e.PID) + "/status"); err == nil {
		if uid, err := parseStatusUID(status); err == nil {
			e.UID = int(uid)
			if u, err := user.LookupId(strconv.Itoa(e.UID)); err == nil {
				e.User = u.Username
			}
		}
	}
	return e
}

// flockHolder finds in /proc/locks a process holding an flock on the file
// with device major:minor and inode ino, from lines such as
// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (device numbers in hex;
// waiters' lines have "->" after the number). It returns 0 when none is
// found.
func flockHolder(locks []byte, major, minor uint32, ino uint64) int {
	for line := range strings.SplitSeq(string(locks), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" {
			continue // a waiter ("->"), or another kind of lock
		}
		id := strings.Split(f[5], ":")
		if len(id) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(id[0], 16, 32)
		mnr, err2 := strconv.ParseUint(id[1], 16, 32)
		n, err3 := strconv.ParseUint(id[2], 10, 64)
		pid, err4 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		if uint32(maj) == major && uint32(mnr) == minor && n == ino && pid > 0 {
			return pid
		}
	}
	return 0
}

// newToken returns a random name-safe token (base32, 26 characters).
func newToken() string { return rand.Text() }
