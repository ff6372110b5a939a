package ledger

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nobody = 65534

// asNobody returns a helper command run as user nobody from a copy of the
// test binary that nobody can execute.
func asNobody(t *testing.T, bin, kind string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+kind)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

func output(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return strings.TrimSpace(string(out))
}

// helperSetup makes a directory with mode (0755: nobody can enter it; 01777:
// nobody can make the state directory in it), holding a copy of this test
// binary named as a claim's process must be, and returns that copy and the
// state directory's path (not made yet).
func helperSetup(t *testing.T, mode os.FileMode) (bin, dir string) {
	t.Helper()
	base, err := os.MkdirTemp("", "claims-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, mode); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(base, coreName)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, filepath.Join(base, "state")
}

// TestAnotherUser shares a state directory between root (this test) and
// user nobody (a helper): one lock for both, each sees the other's leases, and
// neither can remove the other's.
func TestAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	bin, dir := helperSetup(t, 0o755)

	// Root creates the directory and lock file; nobody waits on the same lock.
	unlock, err := Lock(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := output(t, asNobody(t, bin, "trylock", dir)); !strings.Contains(got, "deadline exceeded") {
		t.Errorf("nobody's Lock() while root holds it: %q", got)
	}
	unlock()
	if got := output(t, asNobody(t, bin, "trylock", dir)); got != "locked" {
		t.Errorf("nobody's Lock() once root released it: %q", got)
	}

	// Nobody holds a lease and root one: root sees both, with their owners,
	// and nobody cannot remove root's.
	cmd := asNobody(t, bin, "lease", dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()         //nolint:errcheck
	defer cmd.Process.Kill() //nolint:errcheck
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	token := strings.TrimSpace(line)
	if !validToken(token) {
		t.Fatalf("nobody's WriteLease(): %q", line)
	}
	mine := NewLease([]string{"GPU-root"}, time.Now(), time.Minute)
	writeLease(t, dir, mine)

	leases, err := ActiveLeases(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]int{}
	for _, l := range leases {
		uids[l.Token] = l.UID
	}
	if len(leases) != 2 || uids[token] != nobody || uids[mine.Token] != 0 {
		t.Errorf("ActiveLeases() = %+v, want nobody's and root's", leases)
	}
	if got := output(t, asNobody(t, bin, "release", dir, mine.Token)); !strings.Contains(got, "operation not permitted") {
		t.Errorf("nobody releasing root's lease: %q", got)
	}

	// Once nobody's process is gone its lease stops counting at once.
	stdin.Close()
	cmd.Wait() //nolint:errcheck
	leases, err = ActiveLeases(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 || leases[0].Token != mine.Token {
		t.Errorf("ActiveLeases() after nobody exited = %+v, want root's only", leases)
	}

	// Nobody keeps the lock: root gives up after lockTimeout, naming nobody.
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 300 * time.Millisecond
	holder := asNobody(t, bin, "lock", dir)
	hstdin, _ := holder.StdinPipe()
	hstdout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()         //nolint:errcheck
	defer holder.Process.Kill() //nolint:errcheck
	if line, err := bufio.NewReader(hstdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("nobody's Lock(): %q, %v", line, err)
	}
	_, err = Lock(t.Context(), dir)
	var held *LockHeldError
	if !errors.As(err, &held) || held.PID != holder.Process.Pid || held.UID != nobody || held.Command != coreName {
		t.Errorf("Lock() while nobody holds it: %v (%+v), want nobody's process %d named", err, held, holder.Process.Pid)
	} else if held.User != "" && !strings.Contains(err.Error(), "of user "+held.User+" (uid 65534)") {
		t.Errorf("Lock() error = %q, want nobody named", err)
	}
	hstdin.Close()
}

// A state directory that another ordinary user created is not trusted,
// even though it is shared like /tmp: its owner could remove our claims.
func TestAnotherUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	bin, dir := helperSetup(t, 0o1777)
	// Nobody creates it, and can use it.
	if got := output(t, asNobody(t, bin, "trylock", dir)); got != "locked" {
		t.Fatalf("nobody's Lock() in a directory of its own: %q", got)
	}
	if fi, err := os.Lstat(dir); err != nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Fatalf("nobody's directory: %v, %v", fi, err)
	}
	_, err := Lock(t.Context(), dir)
	if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "belongs to user 65534") {
		t.Errorf("root's Lock() in nobody's directory: %v, want it refused", err)
	}
}
