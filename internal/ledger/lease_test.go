package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 23, 30, 0, 0, time.UTC)

func writeLease(t *testing.T, dir string, l Lease) {
	t.Helper()
	if err := WriteLease(dir, l); err != nil {
		t.Fatal(err)
	}
}

func tokens(ls []Lease) []string {
	var s []string
	for _, l := range ls {
		s = append(s, l.Token)
	}
	return s
}

func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

func TestLeaseRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created on first write
	l := NewLease([]string{"GPU-a", "GPU-b"}, t0, DefaultLeaseTTL)
	if !validToken(l.Token) || l.PID != os.Getpid() || l.Start != startTime(os.Getpid()) || l.Start == 0 ||
		!l.Expires.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NewLease() = %+v", l)
	}
	writeLease(t, dir, l)
	got, err := ActiveLeases(dir, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("ActiveLeases() = %+v, want one", got)
	}
	g := got[0]
	if g.Token != l.Token || !slices.Equal(g.UUIDs, l.UUIDs) || g.PID != l.PID || g.Start != l.Start || g.Host != l.Host ||
		g.UID != os.Geteuid() || !g.Created.Equal(l.Created) || !g.Expires.Equal(l.Expires) {
		t.Errorf("read back %+v, wrote %+v", g, l)
	}
	if err := WriteLease(dir, l); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("writing the same lease twice: %v, want EEXIST", err)
	}
}

func TestLeaseReadableByAll(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	l := NewLease([]string{"GPU-a"}, t0, time.Minute)
	writeLease(t, dir, l)
	fi, err := os.Stat(filepath.Join(dir, leaseName(l.Token)))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("lease mode %v, want 0644", fi.Mode())
	}
}

func TestLeaseExpiry(t *testing.T) {
	tests := []struct {
		name   string
		now    time.Time
		active bool
	}{
		{"just created", t0, true},
		{"clock behind creation", t0.Add(-time.Second), true},
		{"last instant", t0.Add(30*time.Second - time.Nanosecond), true},
		{"expired", t0.Add(30 * time.Second), false},
		{"long expired", t0.Add(time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := NewLease([]string{"GPU-a"}, t0, 30*time.Second)
			writeLease(t, dir, l)
			got, err := ActiveLeases(dir, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != tc.active {
				t.Errorf("ActiveLeases() = %v, want active=%v", tokens(got), tc.active)
			}
			// Our own lease that no longer counts is cleaned up.
			if exists(dir, leaseName(l.Token)) != tc.active {
				t.Errorf("lease file exists=%v, want %v", !tc.active, tc.active)
			}
		})
	}
}

func TestLeaseProcess(t *testing.T) {
	host, _ := os.Hostname()
	dead := deadPID(t)
	tests := []struct {
		name   string
		pid    int
		host   string
		active bool
	}{
		{name: "ours", pid: os.Getpid(), host: host, active: true},
		{name: "no host recorded", pid: os.Getpid(), active: true},
		{name: "dead", pid: dead, host: host},
		{name: "dead, no host recorded", pid: dead},
		// The directory is local: the host field does not keep a lease.
		{name: "another host's, dead", pid: dead, host: host + "-elsewhere"},
		{name: "another host's, alive", pid: os.Getpid(), host: host + "-elsewhere", active: true},
	}
	if os.Geteuid() != 0 {
		// Our file cannot keep a claim alive with root's process.
		tests = append(tests, struct {
			name   string
			pid    int
			host   string
			active bool
		}{name: "someone else's process", pid: 1, host: host})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := NewLease([]string{"GPU-a"}, t0, time.Minute)
			l.PID, l.Host = tc.pid, tc.host
			writeLease(t, dir, l)
			got, err := ActiveLeases(dir, t0)
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != tc.active {
				t.Errorf("ActiveLeases() = %v, want active=%v", tokens(got), tc.active)
			}
		})
	}
}

func TestLeaseIgnoresForeignFiles(t *testing.T) {
	dir := t.TempDir()
	good := NewLease([]string{"GPU-good"}, t0, time.Minute)
	writeLease(t, dir, good)

	// A valid lease outside dir, to be linked in by symlink.
	outside := t.TempDir()
	planted := NewLease([]string{"GPU-planted"}, t0, time.Minute)
	writeLease(t, outside, planted)

	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(leaseName("GARBAGE"), "not json {")
	write(leaseName("EMPTY"), "")
	write(leaseName("MISMATCH"), `{"token":"OTHER","uuids":["GPU-x"],"pid":1,"expires":"2030-01-01T00:00:00Z"}`)
	write(leaseName("NOPID"), `{"token":"NOPID","uuids":["GPU-x"],"expires":"2030-01-01T00:00:00Z"}`)
	write(leaseName("NOEXPIRY"), `{"token":"NOEXPIRY","uuids":["GPU-x"],"pid":1}`)
	write(leaseName("HUGE"), `{"token":"HUGE","pid":1,"uuids":["`+strings.Repeat("x", maxFileSize)+`"]}`)
	write("lease-.json", `{}`)
	write("lease-bad.name.json", `{}`)
	write(".tmp-LEFTOVER", "half a lease")
	symlink(t, filepath.Join(outside, leaseName(planted.Token)), filepath.Join(dir, leaseName(planted.Token)))
	symlink(t, "/nonexistent", filepath.Join(dir, leaseName("DANGLING")))
	if err := os.Mkdir(filepath.Join(dir, leaseName("ADIR")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, leaseName("FIFO")), 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := ActiveLeases(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tokens(got), []string{good.Token}) {
		t.Errorf("ActiveLeases() = %v, want only %v", tokens(got), good.Token)
	}
}

func TestActiveLeasesOrder(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 3 {
		l := NewLease([]string{"GPU-a"}, t0.Add(time.Duration(2-i)*time.Second), time.Minute)
		writeLease(t, dir, l)
		want = append([]string{l.Token}, want...)
	}
	got, err := ActiveLeases(dir, t0.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tokens(got), want) {
		t.Errorf("ActiveLeases() = %v, want oldest first %v", tokens(got), want)
	}
}

func TestActiveLeasesDir(t *testing.T) {
	got, err := ActiveLeases(filepath.Join(t.TempDir(), "missing"), t0)
	if got != nil || err != nil {
		t.Errorf("missing dir: %v, %v; want nothing", got, err)
	}
	if exists(t.TempDir(), "missing") {
		t.Error("ActiveLeases created the directory")
	}
	unsafe := mkdir(t, filepath.Join(t.TempDir(), "state"), 0o777)
	if _, err := ActiveLeases(unsafe, t0); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("unsafe dir: %v, want ErrUnsafeDir", err)
	}
}

func TestWriteLeaseErrors(t *testing.T) {
	ok := NewLease([]string{"GPU-a"}, t0, time.Minute)
	with := func(f func(*Lease)) Lease {
		l := ok
		f(&l)
		return l
	}
	tests := []struct {
		name string
		l    Lease
		err  string
	}{
		{"empty token", with(func(l *Lease) { l.Token = "" }), "invalid lease token"},
		{"path in token", with(func(l *Lease) { l.Token = "../../etc/passwd" }), "invalid lease token"},
		{"dot token", with(func(l *Lease) { l.Token = "." }), "invalid lease token"},
		{"long token", with(func(l *Lease) { l.Token = strings.Repeat("A", 65) }), "invalid lease token"},
		{"no PID", with(func(l *Lease) { l.PID = 0 }), "no PID"},
		{"no expiry", with(func(l *Lease) { l.Expires = time.Time{} }), "no PID or expiry"},
		{"no start time", with(func(l *Lease) { l.Start = 0 }), "no process start time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteLease(dir, tc.l); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("WriteLease() error = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestWriteLeaseNotThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewLease([]string{"GPU-a"}, t0, time.Minute)
	symlink(t, victim, filepath.Join(dir, leaseName(l.Token)))
	if err := WriteLease(dir, l); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("WriteLease() over a symlink: %v, want EEXIST", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("victim changed: %q", b)
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("left behind %v", names)
	}
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	l := NewLease([]string{"GPU-a"}, t0, time.Minute)
	writeLease(t, dir, l)
	if err := Release(dir, l.Token); err != nil {
		t.Fatal(err)
	}
	if exists(dir, leaseName(l.Token)) {
		t.Error("lease still there after Release")
	}
	if err := Release(dir, l.Token); err != nil {
		t.Errorf("second Release() = %v", err)
	}
	if err := Release(filepath.Join(dir, "missing"), l.Token); err != nil {
		t.Errorf("Release() in a missing dir = %v", err)
	}
	if err := Release(dir, "../lock"); err == nil {
		t.Error("Release() accepted a path as token")
	}
}
