package ledger

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLeaseTTL is how long a lease counts while its process lives.
// It is also the most any lease counts after its file was written, whatever
// expiry the file says: a TTL above it is cut to it, so renew more often.
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
	Token string   `json:"token"` // names the lease file; keep it to Release
	UUIDs []string `json:"uuids"` // the GPUs claimed
	PID   int      `json:"pid"`   // the invocation holding the claim
	// Start is when that process started, in clock ticks after boot
	// (field 22 of /proc/PID/stat), so that a PID reused by another
	// process does not keep the claim. NewLease sets it.
	Start uint64 `json:"start"`
	// Host is recorded for people; liveness ignores it (the state
	// directory is local to the host).
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
		Start:   startTime(os.Getpid()),
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
	if l.Start == 0 {
		return fmt.Errorf("lease %s has no process start time (make it with NewLease)", l.Token)
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

// ActiveLeases returns the leases in dir that count at now: not expired at
// now, written (by the file's ctime) less than DefaultLeaseTTL ago, and their
// process still the plugin's run that took them (see the package doc; the
// host field is ignored). Files that are not leases — unreadable,
// unparseable, symlinks, not matching their name — are ignored. Our own
// leases that no longer count are removed; others' are left to their owners,
// as the sticky directory requires, and simply ignored. A missing dir holds
// no leases. The result is sorted by creation time, then token.
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
	me := uint32(os.Geteuid())
	wall := wallClock()
	var active []Lease
	for _, name := range names {
		l, m, ok := readLease(d, name)
		if !ok {
			continue
		}
		live := now.Before(l.Expires) && wall.Before(m.ctime.Add(DefaultLeaseTTL)) &&
			running(l.PID, l.Start, m.uid) != procDead
		if live {
			active = append(active, l)
		} else if m.uid == me {
			unix.Unlinkat(int(d.Fd()), name, 0) //nolint:errcheck // another reader may have removed it
		}
	}
	slices.SortFunc(active, func(a, b Lease) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Token, b.Token))
	})
	return active, nil
}

// readLease reads lease file name; ok is false for anything that is not a
// well-formed lease matching its name. The lease's UID is the file's owner.
func readLease(d *os.File, name string) (Lease, fileMeta, bool) {
	if _, ok := leaseToken(name); !ok {
		return Lease{}, fileMeta{}, false // not even opened
	}
	data, m, err := readFile(d, name)
	if err != nil {
		return Lease{}, fileMeta{}, false
	}
	l, ok := parseLease(name, data)
	if !ok {
		return Lease{}, fileMeta{}, false
	}
	l.UID = int(m.uid)
	return l, m, true
}

// parseLease parses the content of lease file name; ok is false unless it
// is a well-formed lease whose token is the one its name carries.
func parseLease(name string, data []byte) (l Lease, ok bool) {
	token, ok := leaseToken(name)
	if !ok || json.Unmarshal(data, &l) != nil {
		return Lease{}, false
	}
	if l.Token != token || l.PID <= 0 || l.Start == 0 || l.Expires.IsZero() {
		return Lease{}, false
	}
	return l, true
}

// leaseToken is the token in lease file name "lease-TOKEN.json".
func leaseToken(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, leasePrefix)
	if !ok {
		return "", false
	}
	token, ok := strings.CutSuffix(rest, leaseSuffix)
	return token, ok && validToken(token)
}

// Release removes the lease named by token from dir; releasing a lease that
// is already gone is not an error. Only the lease's owner can remove it.
func Release(dir, token string) error {
	if !validToken(token) {
		return fmt.Errorf("invalid lease token %q", token)
	}
	return removeFile(dir, leaseName(token), "releasing lease")
}

// Renew replaces lease l in dir with one that expires at expires. Call it
// under Lock, so that no other invocation sees the GPUs unclaimed in
// between. The new lease is a new file, so its ctime (see ActiveLeases) is
// now: renew well within DefaultLeaseTTL.
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
