package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Files forged by a user who can write the state directory but has no
// Docker access (issue #9): none of them may hold GPUs or the queue.

// binaryNamed copies the test binary to a new directory under the name given
// and returns its path, so that a helper runs under that name.
func binaryNamed(t *testing.T, name string) string {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// started starts cmd, which the test ends (kill, wait) when it is done.
func started(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
	})
	return cmd
}

// helperAt is helper run from the binary at bin.
func helperAt(bin, kind string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+kind)
	cmd.Stderr = os.Stderr
	return cmd
}

// zombie returns the PID of a child that has exited and not been reaped,
// with its start time.
func zombie(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := started(t, helper(t, "exit"))
	pid := cmd.Process.Pid
	start := startTime(pid)
	for range 500 {
		if p, err := readProc(pid); err == nil && p.state == 'Z' {
			return pid, start
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not become a zombie", pid)
	return 0, 0
}

// forge writes a file as a forger would, straight into dir.
func forge(t *testing.T, dir, name string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A process to name, the way a forger would: its PID, start time, and
// whether a lease or ticket naming it should count.
type claimant struct {
	name  string
	pid   int
	start uint64
	live  bool
}

func claimants(t *testing.T) []claimant {
	me := os.Getpid()
	zpid, zstart := zombie(t)
	sleep := started(t, exec.Command("sleep", "60")).Process.Pid
	core := started(t, helperAt(binaryNamed(t, coreName), "sleep")).Process.Pid

	// Any process can take the name; its executable gives it away.
	renamed := helperAt(binaryNamed(t, "other.test"), "rename", coreName)
	out, err := renamed.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	started(t, renamed)
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "renamed\n" {
		t.Fatalf("rename helper said %q, %v", line, err)
	}
	return []claimant{
		{"this process", me, startTime(me), true},
		{"perceptron-core", core, startTime(core), true},
		{"a long-lived process of another name", sleep, startTime(sleep), false},
		{"a process named perceptron-core, running another program", renamed.Process.Pid, startTime(renamed.Process.Pid), false},
		{"a zombie", zpid, zstart, false},
		{"a reused PID (another start time)", me, startTime(me) - 1, false},
		{"no start time", me, 0, false},
		{"a dead process", deadPID(t), startTime(me), false},
	}
}

func TestForgedLeaseProcess(t *testing.T) {
	for _, c := range claimants(t) {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := NewLease([]string{"GPU-a"}, time.Now(), DefaultLeaseTTL)
			l.PID, l.Start = c.pid, c.start
			forge(t, dir, leaseName(l.Token), l)
			got, err := ActiveLeases(dir, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != c.live {
				t.Errorf("ActiveLeases() = %v, want active=%v", tokens(got), c.live)
			}
		})
	}
}

func TestForgedTicket(t *testing.T) {
	for _, c := range claimants(t) {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			forge(t, dir, ticketName(1), ticketFile{Token: "FORGED", PID: c.pid, Start: c.start, Created: time.Now()})
			me := enqueueT(t, dir)
			if me.Seq != 2 {
				t.Fatalf("Seq = %d, want 2", me.Seq)
			}
			if got, want := ahead(t, me), map[bool]int{true: 1, false: 0}[c.live]; got != want {
				t.Errorf("Ahead() = %d, want %d", got, want)
			}
		})
	}
}

// A lease counts at most DefaultLeaseTTL after its file was written (its
// ctime, set by the kernel), whatever expiry or host it claims.
func TestForgedLeaseExpiry(t *testing.T) {
	defer func(f func() time.Time) { wallClock = f }(wallClock)
	dir := t.TempDir()
	host, _ := os.Hostname()
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	l := NewLease([]string{"GPU-a"}, time.Now(), DefaultLeaseTTL)
	l.Expires, l.Host = far, host+"-elsewhere"
	forge(t, dir, leaseName(l.Token), l)
	// Back-dating the file changes its mtime, not its ctime.
	past := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, leaseName(l.Token)), past, past); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		after  time.Duration
		active bool
	}{
		{0, true},
		{DefaultLeaseTTL - time.Second, true},
		{DefaultLeaseTTL + time.Second, false},
		{24 * time.Hour, false},
	} {
		wallClock = func() time.Time { return time.Now().Add(tc.after) }
		got, err := ActiveLeases(dir, time.Now().Add(tc.after))
		if err != nil {
			t.Fatal(err)
		}
		if (len(got) == 1) != tc.active {
			t.Errorf("%v after writing a lease to year 9999: ActiveLeases() = %v, want active=%v", tc.after, tokens(got), tc.active)
		}
	}
	if exists(dir, leaseName(l.Token)) {
		t.Error("our own lease that no longer counts was not removed")
	}
}

// Renew writes a new file (its inode number may be the old one's, reused),
// so the lease's ctime moves on.
func TestRenewRefreshesCtime(t *testing.T) {
	defer func(f func() time.Time) { wallClock = f }(wallClock)
	dir := t.TempDir()
	l := NewLease([]string{"GPU-a"}, time.Now(), DefaultLeaseTTL)
	writeLease(t, dir, l)
	before := statT(t, filepath.Join(dir, leaseName(l.Token)))
	time.Sleep(50 * time.Millisecond) // past the coarse clock's tick
	if err := Renew(dir, l, time.Now().Add(DefaultLeaseTTL)); err != nil {
		t.Fatal(err)
	}
	after := statT(t, filepath.Join(dir, leaseName(l.Token)))
	ctime := func(st *unix.Stat_t) time.Time { return time.Unix(st.Ctim.Unix()) }
	if !ctime(after).After(ctime(before)) {
		t.Fatalf("Renew() did not move the ctime: %v, then %v", ctime(before), ctime(after))
	}
	// Just past the first file's end, the renewed one still counts.
	wallClock = func() time.Time { return ctime(before).Add(DefaultLeaseTTL + time.Millisecond) }
	if got, err := ActiveLeases(dir, time.Now()); err != nil || len(got) != 1 {
		t.Errorf("renewed lease: ActiveLeases() = %v, %v; want it", tokens(got), err)
	}
}

func statT(t *testing.T, path string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// A process that keeps the lock makes Lock fail after lockTimeout, naming it.
func TestLockHeldNamesHolder(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 300 * time.Millisecond
	dir := t.TempDir()
	cmd := helper(t, "lock", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	started(t, cmd)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	begin := time.Now()
	unlock, err := Lock(context.Background(), dir)
	if err == nil {
		unlock()
		t.Fatal("Lock() succeeded while another process holds the lock")
	}
	if waited := time.Since(begin); waited < lockTimeout || waited > lockTimeout+5*time.Second {
		t.Errorf("Lock() gave up after %v, want %v", waited, lockTimeout)
	}
	var held *LockHeldError
	if !errors.As(err, &held) {
		t.Fatalf("Lock() error = %v, want a LockHeldError", err)
	}
	want := LockHeldError{Path: dir + "/" + lockName, Waited: lockTimeout, PID: cmd.Process.Pid,
		Command: filepath.Base(os.Args[0])[:min(commLen, len(filepath.Base(os.Args[0])))], UID: os.Geteuid()}
	held.User = ""
	if *held != want {
		t.Errorf("LockHeldError = %+v, want %+v", *held, want)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("process %d (%s) of ", want.PID, want.Command)) ||
		!strings.Contains(msg, want.Path) {
		t.Errorf("Lock() error = %q, want the holder named", msg)
	}

	// A deadline earlier than lockTimeout still ends the wait as before.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock() with a short deadline: %v, want DeadlineExceeded", err)
	}
}

// A shared flock blocks Lock too; the holder is found all the same.
func TestLockHeldShared(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 100 * time.Millisecond
	dir := t.TempDir()
	unlock, err := Lock(t.Context(), dir) // creates the lock file
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	f, err := os.Open(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	_, err = Lock(t.Context(), dir)
	var held *LockHeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Errorf("Lock() = %v, want a LockHeldError naming us (%d)", err, os.Getpid())
	}
}

func TestLockHeldErrorMessage(t *testing.T) {
	tests := []struct {
		e    LockHeldError
		want string
	}{
		{LockHeldError{Path: "/d/lock", Waited: 30 * time.Second, PID: 42, Command: "sleep", UID: 1000, User: "mallory"},
			"held for over 30s by process 42 (sleep) of user mallory (uid 1000);"},
		{LockHeldError{Path: "/d/lock", Waited: time.Second, PID: 42, UID: 1000}, "by process 42 of uid 1000;"},
		{LockHeldError{Path: "/d/lock", Waited: time.Second, UID: -1}, "by a process that cannot be identified;"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); !strings.Contains(got, tc.want) || !strings.Contains(got, "/d/lock") {
			t.Errorf("Error() = %q, want %q in it", got, tc.want)
		}
	}
}

func TestFlockHolder(t *testing.T) {
	locks := []byte(`1: POSIX  ADVISORY  WRITE 99 08:01:5678 0 EOF
2: FLOCK  ADVISORY  WRITE 1234 fd:0a:5678 0 EOF
2: -> FLOCK  ADVISORY  WRITE 777 08:01:5678 0 EOF
3: FLOCK  ADVISORY  READ 4321 08:01:5678 0 EOF
4: OFDLCK ADVISORY  READ -1 08:01:5678 0 EOF
garbage
5: FLOCK  ADVISORY  WRITE x 08:01:9 0 EOF
`)
	tests := []struct {
		major, minor uint32
		ino          uint64
		want         int
	}{
		{8, 1, 5678, 4321},
		{0xfd, 0x0a, 5678, 1234},
		{8, 1, 9, 0},
		{8, 2, 5678, 0},
	}
	for _, tc := range tests {
		if got := flockHolder(locks, tc.major, tc.minor, tc.ino); got != tc.want {
			t.Errorf("flockHolder(%x:%x:%d) = %d, want %d", tc.major, tc.minor, tc.ino, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	comm, state, start, err := parseStat([]byte("42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n"))
	if err != nil || comm != "a) b (c)" || state != 'S' || start != 987654 {
		t.Errorf("parseStat() = %q, %c, %d, %v", comm, state, start, err)
	}
	for _, bad := range []string{"", "42 (x", "42 x) S 1", "42 (x) S 1 2 3", "42 (x) S 1 42 42 0 -1 4 1 0 0 0 1 2 0 0 20 0 1 0 abc 1"} {
		if _, _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
	if uid, err := parseStatusUID([]byte("Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\n")); uid != 1001 || err != nil {
		t.Errorf("parseStatusUID() = %d, %v; want the effective 1001", uid, err)
	}
}

// A state directory of another ordinary user is refused, whatever its mode:
// its owner could remove our claims.
func TestForeignDirRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory away")
	}
	for _, mode := range []uint32{0o1777, 0o755} {
		t.Run(strconv.FormatUint(uint64(mode), 8), func(t *testing.T) {
			dir := mkdir(t, filepath.Join(t.TempDir(), "state"), mode)
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if unlock, err := Lock(ctx, dir); err == nil {
				unlock()
				t.Fatal("Lock() took a lock in another user's directory")
			} else if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "belongs to user 65534") ||
				!strings.Contains(err.Error(), EnvStateDir) || !strings.Contains(err.Error(), "install.sh --system") {
				t.Errorf("Lock() error = %v", err)
			}
			if _, err := ActiveLeases(dir, time.Now()); !errors.Is(err, ErrUnsafeDir) {
				t.Errorf("ActiveLeases() = %v, want ErrUnsafeDir", err)
			}
			if _, err := Enqueue(dir, 1); !errors.Is(err, ErrUnsafeDir) {
				t.Errorf("Enqueue() = %v, want ErrUnsafeDir", err)
			}
		})
	}
}

// The parser of lease files never panics, and accepts only a complete lease
// whose token is the one in the file's name.
func FuzzReadLease(f *testing.F) {
	good := NewLease([]string{"GPU-a", "GPU-b"}, t0, DefaultLeaseTTL)
	data, err := json.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(leaseName(good.Token), data)
	f.Add(leaseName("OTHER"), data)
	f.Add("lease-.json", []byte(`{"token":"","pid":1,"start":1,"expires":"2030-01-01T00:00:00Z"}`))
	f.Add(leaseName("A"), []byte(`{"token":"A","pid":1,"start":1,"expires":"9999-12-31T00:00:00Z","host":"elsewhere"}`))
	f.Add(leaseName("A"), []byte(`{"token":"A","TOKEN":"B","pid":1,"start":1,"expires":"2030-01-01T00:00:00Z"}`))
	f.Add(leaseName("A"), []byte(`{"token":"A","pid":-1,"start":1,"expires":"2030-01-01T00:00:00Z"}`))
	f.Add(leaseName("A"), []byte(`{"token":"A","pid":1e30,"start":-1,"expires":"x"}`))
	f.Add("lease-A.json.json", []byte(`{"token":"A.json","pid":1,"start":1,"expires":"2030-01-01T00:00:00Z"}`))
	f.Add("../lease-A.json", []byte(`{"token":"A","pid":1,"start":1,"expires":"2030-01-01T00:00:00Z"}`))
	f.Add(leaseName("A"), []byte("not json {"))
	f.Add(leaseName("A"), []byte{})
	f.Add(leaseName("A"), []byte("\x00\xff[]null"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		l, ok := parseLease(name, data)
		if !ok {
			return
		}
		if leaseName(l.Token) != name || !validToken(l.Token) {
			t.Fatalf("accepted lease %q in file %q", l.Token, name)
		}
		if l.PID <= 0 || l.Start == 0 || l.Expires.IsZero() {
			t.Fatalf("accepted an incomplete lease %+v", l)
		}
	})
}
