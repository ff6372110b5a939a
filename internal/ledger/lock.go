package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const lockName = "lock"

// Poll intervals while another invocation holds the lock: it is held for
// the time to read the inventory and holders, choose and write a lease,
// milliseconds, so a short poll costs little and keeps waiters responsive.
const (
	minPoll = 5 * time.Millisecond
	maxPoll = 100 * time.Millisecond
)

// Lock takes the host-wide lock in dir, creating dir (mode 1777) and the lock
// file as needed, and waits for it until ctx is done. unlock releases it and
// may be called more than once. The lock is an flock(2) on dir/lock, so the
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
	wait := minPoll
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s/%s: %w", dir, lockName, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for the GPU claim lock %s/%s: %w", dir, lockName, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, maxPoll)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			unix.Flock(fd, unix.LOCK_UN) //nolint:errcheck // closing releases it anyway
			f.Close()
		})
	}, nil
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

// newToken returns a random name-safe token (base32, 26 characters).
func newToken() string { return rand.Text() }
