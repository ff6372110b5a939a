package ledger

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a helper process, chosen by this variable.
const helperEnv = "CLAIMS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "lock":
		// Take the lock, say so, hold it until stdin closes.
		unlock, err := Lock(context.Background(), os.Args[len(os.Args)-1])
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Stdout.WriteString("locked\n")
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck
		unlock()
		os.Exit(0)
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	case "exit":
		os.Exit(0)
	case "rename":
		// Take another name (comm), as any process can, then sleep.
		if err := os.WriteFile("/proc/self/comm", []byte(os.Args[len(os.Args)-1]), 0); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Stdout.WriteString("renamed\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "trylock":
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if unlock, err := Lock(ctx, os.Args[len(os.Args)-1]); err == nil {
			unlock()
			os.Stdout.WriteString("locked\n")
		} else {
			os.Stdout.WriteString(err.Error() + "\n")
		}
		os.Exit(0)
	case "lease":
		// Write a lease, print its token, hold it until stdin closes.
		l := NewLease([]string{"GPU-helper"}, time.Now(), time.Minute)
		if err := WriteLease(os.Args[len(os.Args)-1], l); err != nil {
			os.Stdout.WriteString(err.Error() + "\n")
			os.Exit(0)
		}
		os.Stdout.WriteString(l.Token + "\n")
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck
		os.Exit(0)
	case "release":
		if err := Release(os.Args[len(os.Args)-2], os.Args[len(os.Args)-1]); err != nil {
			os.Stdout.WriteString(err.Error() + "\n")
		} else {
			os.Stdout.WriteString("released\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper starts the test binary as a helper process of the given kind.
func helper(t *testing.T, kind string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+kind)
	cmd.Stderr = os.Stderr
	return cmd
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := helper(t, "sleep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Kill() //nolint:errcheck
	cmd.Wait()         //nolint:errcheck
	return pid
}

func TestStateDir(t *testing.T) {
	t.Setenv(EnvStateDir, "")
	if got := StateDir(); got != DefaultStateDir {
		t.Errorf("StateDir() = %q, want %q", got, DefaultStateDir)
	}
	t.Setenv(EnvStateDir, "/somewhere/else")
	if got := StateDir(); got != "/somewhere/else" {
		t.Errorf("StateDir() = %q, want the override", got)
	}
}

func TestOpenDir(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, base string) string // returns the dir to open
		create bool
		err    string // "" for success
		mode   os.FileMode
	}{
		{
			name:   "created shared and sticky",
			setup:  func(t *testing.T, base string) string { return filepath.Join(base, "state") },
			create: true,
			mode:   os.ModeDir | os.ModeSticky | 0o777,
		},
		{
			name:  "missing without create",
			setup: func(t *testing.T, base string) string { return filepath.Join(base, "state") },
		},
		{
			name: "private dir of ours",
			setup: func(t *testing.T, base string) string {
				return mkdir(t, filepath.Join(base, "state"), 0o700)
			},
			create: true,
			mode:   os.ModeDir | 0o700,
		},
		{
			name: "existing mode is kept",
			setup: func(t *testing.T, base string) string {
				return mkdir(t, filepath.Join(base, "state"), 0o755)
			},
			create: true,
			mode:   os.ModeDir | 0o755,
		},
		{
			name: "world-writable without sticky bit",
			setup: func(t *testing.T, base string) string {
				return mkdir(t, filepath.Join(base, "state"), 0o777)
			},
			create: true,
			err:    "without the sticky bit",
		},
		{
			name: "symlink to a directory",
			setup: func(t *testing.T, base string) string {
				target := mkdir(t, filepath.Join(base, "elsewhere"), 0o1777)
				link := filepath.Join(base, "state")
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			create: true,
			err:    "is a symlink",
		},
		{
			name: "dangling symlink",
			setup: func(t *testing.T, base string) string {
				link := filepath.Join(base, "state")
				if err := os.Symlink(filepath.Join(base, "nowhere"), link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			create: true,
			err:    "is a symlink",
		},
		{
			name: "a file",
			setup: func(t *testing.T, base string) string {
				p := filepath.Join(base, "state")
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			create: true,
			err:    "not a directory",
		},
		{
			name:   "empty",
			setup:  func(t *testing.T, base string) string { return "" },
			create: true,
			err:    "no directory given",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t, t.TempDir())
			d, err := openDir(dir, tc.create)
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("openDir() error = %v, want ErrUnsafeDir saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.mode == 0 {
				if d != nil {
					t.Fatal("openDir() opened a missing directory")
				}
				return
			}
			defer d.Close()
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.mode {
				t.Errorf("mode = %v, want %v", fi.Mode(), tc.mode)
			}
		})
	}
}

func TestCheckDir(t *testing.T) {
	const me, other = 1000, 1001
	tests := []struct {
		name string
		uid  uint32
		mode uint32
		ok   bool
	}{
		{"ours, private", me, 0o700, true},
		{"root's", 0, 0o755, true},
		{"root's, group-writable", 0, 0o775, true},
		{"another user's, shared", other, 0o1777, false},
		{"another user's, world-writable, not sticky", other, 0o777, false},
		{"another user's, private", other, 0o755, false},
		{"another user's, group-writable", other, 0o770, false},
		{"ours, world-writable, not sticky", me, 0o777, false},
		{"root's, world-writable, not sticky", 0, 0o777, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := unix.Stat_t{Uid: tc.uid, Mode: unix.S_IFDIR | tc.mode}
			err := checkDir("d", &st, me)
			if (err == nil) != tc.ok {
				t.Errorf("checkDir() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUnsafeDir) {
				t.Errorf("checkDir() = %v, want ErrUnsafeDir", err)
			}
		})
	}
}

// mkdir makes directory p with exactly mode (permission and sticky bits).
func mkdir(t *testing.T, p string, mode uint32) string {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, mode); err != nil { // no umask, unlike Mkdir
		t.Fatal(err)
	}
	return p
}

func TestLockGoroutines(t *testing.T) {
	dir := t.TempDir()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // only to read inside safely under -race
		inside int
		most   int
	)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				unlock, err := Lock(t.Context(), dir)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders at once, want 1", most)
	}
}

func TestLockTimeoutAndUnlock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock() error = %v, want DeadlineExceeded", err)
	}
	unlock()
	unlock() // twice is harmless
	unlock2, err := Lock(t.Context(), dir)
	if err != nil {
		t.Fatalf("Lock() after unlock: %v", err)
	}
	unlock2()

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, err := Lock(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock() with a cancelled context: %v, want Canceled", err)
	}
}

// TestLockAcrossProcesses holds the lock in another process, then kills it:
// the kernel releases the lock with the process.
func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	for _, end := range []string{"unlock", "kill"} {
		t.Run(end, func(t *testing.T) {
			cmd := helper(t, "lock", dir)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()         //nolint:errcheck
			defer cmd.Process.Kill() //nolint:errcheck
			if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
				t.Fatalf("helper said %q, %v", line, err)
			}

			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			if _, err := Lock(ctx, dir); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Lock() while another process holds it: %v, want DeadlineExceeded", err)
			}

			if end == "kill" {
				cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
			} else {
				stdin.Close()
			}
			ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			unlock, err := Lock(ctx, dir)
			if err != nil {
				t.Fatalf("Lock() after the holder's %s: %v", end, err)
			}
			unlock()
		})
	}
}

func TestLockFileNotFollowed(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, lock, victim string)
		err   string
	}{
		{
			name:  "symlink to a file",
			plant: func(t *testing.T, lock, victim string) { symlink(t, victim, lock) },
			err:   "is a symlink",
		},
		{
			name:  "dangling symlink",
			plant: func(t *testing.T, lock, victim string) { symlink(t, victim+".new", lock) },
			err:   "is a symlink",
		},
		{
			name: "FIFO",
			plant: func(t *testing.T, lock, victim string) {
				if err := syscall.Mkfifo(lock, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			err: "not a regular file",
		},
		{
			name: "directory",
			plant: func(t *testing.T, lock, victim string) {
				if err := os.Mkdir(lock, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			err: "not a regular file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, filepath.Join(dir, lockName), victim)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			unlock, err := Lock(ctx, dir)
			if err == nil {
				unlock()
				t.Fatal("Lock() succeeded through a planted file")
			}
			if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Lock() error = %v, want ErrUnsafeDir saying %q", err, tc.err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Errorf("victim changed: %q", b)
			}
			if _, err := os.Lstat(victim + ".new"); err == nil {
				t.Error("a file was created through the dangling symlink")
			}
		})
	}
}

func TestLockFilePermissions(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	unlock, err := Lock(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	fi, err := os.Stat(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("lock file mode %v, want 0644 so every user can open it", fi.Mode())
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestRunning(t *testing.T) {
	me := uint32(os.Geteuid())
	self := startTime(os.Getpid())
	if self == 0 {
		t.Fatal("cannot read our own start time")
	}
	tests := []struct {
		name  string
		pid   int
		start uint64
		owner uint32
		want  liveness
	}{
		{"us", os.Getpid(), self, me, procLive},
		{"us, as root's file", os.Getpid(), self, 0, procLive},
		{"us, another start", os.Getpid(), self + 1, me, procDead},
		{"us, no start", os.Getpid(), 0, me, procDead},
		{"us, claimed by another user", os.Getpid(), self, me + 12345, procDead},
		{"dead", deadPID(t), self, me, procDead},
		{"zero", 0, self, me, procDead},
		{"negative", -1, self, me, procDead},
		{"above pid_max", 1 << 22, self, me, procDead},
		{"init, another program", 1, startTime(1), 0, procDead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := running(tc.pid, tc.start, tc.owner); got != tc.want {
				t.Errorf("running(%d, %d, %d) = %v, want %v", tc.pid, tc.start, tc.owner, got, tc.want)
			}
		})
	}
}
