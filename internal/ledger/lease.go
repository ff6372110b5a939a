package ledger

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLeaseTTL is how long a lease counts while its process lives.
//
// A lease stops counting at once when its process is gone, so the TTL only
// bounds a process that is alive but stuck (stopped with ^Z, a hung daemon)
// and PID reuse. Between choosing GPUs and creating the container there is
// only a `docker create`, normally a second; a minute leaves ample margin
// without pulling an image inside it (pull first, then lock). Too short a TTL
// would hand a slow invocation's GPUs to someone else.
const DefaultLeaseTTL = time.Minute

const (
	leasePrefix = "lease-"
	leaseSuffix = ".json"
)

// Lease claims GPUs for a container about to be created.
type Lease struct {
	Token   string    `json:"token"` // names the lease file; keep it to Release
	UUIDs   []string  `json:"uuids"` // the GPUs claimed
	PID     int       `json:"pid"`   // the invocation holding the claim
	Host    string    `json:"host,omitempty"`
	UID     int       `json:"uid"` // on reading, the lease file's owner, whatever the file says
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// NewLease returns a lease on uuids for this process, from now for ttl, with
// a fresh random token.
func NewLease(uuids []string, now time.Time, ttl time.Duration) Lease {
	host, _ := os.Hostname()
	return Lease{
		Token:   newToken(),
		UUIDs:   slices.Clone(uuids),
		PID:     os.Getpid(),
		Host:    host,
		UID:     os.Geteuid(),
		Created: now,
		Expires: now.Add(ttl),
	}
}

// WriteLease records l in dir (created if missing) as a file named after its
// token, readable by all. It fails if that file exists.
func WriteLease(dir string, l Lease) error {
	if !validToken(l.Token) {
		return fmt.Errorf("invalid lease token %q", l.Token)
	}
	if l.PID <= 0 || l.Expires.IsZero() {
		return fmt.Errorf("lease %s has no PID or expiry", l.Token)
	}
	d, err := openDir(dir, true)
	if err != nil {
		return err
	}
	defer d.Close()
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := createFile(d, leaseName(l.Token), data); err != nil {
		return fmt.Errorf("writing lease: %w", err)
	}
	return nil
}

// ActiveLeases returns the leases in dir that count at now: not expired, and
// their process alive (on this host; a lease from another host counts until
// it expires). Files that are not leases — unreadable, unparseable, symlinks,
// not matching their name — are ignored. Our own leases that no longer count
// are removed; others' are left to their owners, as the sticky directory
// requires, and simply ignored. A missing dir holds no leases.
// The result is sorted by creation time, then token.
func ActiveLeases(dir string, now time.Time) ([]Lease, error) {
	d, err := openDir(dir, false)
	if d == nil || err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := listNames(d, leasePrefix)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	me := uint32(os.Geteuid())
	var active []Lease
	for _, name := range names {
		l, owner, ok := readLease(d, name)
		if !ok {
			continue
		}
		live := now.Before(l.Expires) && (l.Host != "" && l.Host != host || alive(l.PID, owner))
		if live {
			active = append(active, l)
		} else if owner == me {
			unix.Unlinkat(int(d.Fd()), name, 0) //nolint:errcheck // another reader may have removed it
		}
	}
	slices.SortFunc(active, func(a, b Lease) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Token, b.Token))
	})
	return active, nil
}

// readLease parses lease file name; ok is false for anything that is not a
// well-formed lease matching its name.
func readLease(d *os.File, name string) (l Lease, owner uint32, ok bool) {
	token, found := strings.CutSuffix(strings.TrimPrefix(name, leasePrefix), leaseSuffix)
	if !found || !validToken(token) {
		return Lease{}, 0, false
	}
	data, owner, err := readFile(d, name)
	if err != nil || json.Unmarshal(data, &l) != nil {
		return Lease{}, 0, false
	}
	if l.Token != token || l.PID <= 0 || l.Expires.IsZero() {
		return Lease{}, 0, false
	}
	l.UID = int(owner)
	return l, owner, true
}

// Release removes the lease named by token from dir; releasing a lease that
// is already gone is not an error. Only the lease's owner can remove it.
func Release(dir, token string) error {
	if !validToken(token) {
		return fmt.Errorf("invalid lease token %q", token)
	}
	d, err := openDir(dir, false)
	if d == nil || err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Unlinkat(int(d.Fd()), leaseName(token), 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("releasing lease: %w", &os.PathError{Op: "remove", Path: dir + "/" + leaseName(token), Err: err})
	}
	return nil
}

// Renew replaces lease l in dir with one that expires at expires. Call it
// under Lock, so that no other invocation sees the GPUs unclaimed in
// between.
func Renew(dir string, l Lease, expires time.Time) error {
	if err := Release(dir, l.Token); err != nil {
		return err
	}
	l.Expires = expires
	return WriteLease(dir, l)
}

func leaseName(token string) string { return leasePrefix + token + leaseSuffix }

// validToken accepts 1 to 64 letters, digits, '-' and '_': safe in a file name.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
