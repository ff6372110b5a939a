// Package e2e drives the docker-perceptron plugin through the stock docker
// CLI against a private dockerd, the way a user does. See README.md.
package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

const (
	// testImage is a busybox rootfs imported with "docker import".
	testImage = "perceptron-test:latest"
	// cuda99Image is testImage with NVIDIA_REQUIRE_CUDA=cuda>=99.0, a
	// requirement no driver meets.
	cuda99Image = "perceptron-test:cuda99"

	netnsPrefix = "perceptron-e2e-"
	tmpPrefix   = "pe2e-"
	hookName    = "nvidia-container-runtime-hook"
)

// dockerBin is a docker client binary the tests can drive.
type dockerBin struct {
	Name string // e.g. "docker-28.2.2", usable as a subtest name
	Path string
}

// cliCandidates are the docker clients tried, the stock one first.
var cliCandidates = []string{"/usr/local/bin/docker", "/usr/bin/docker"}

// suite is the state TestMain sets up for every test in the package.
var suite struct {
	skip    string      // non-empty: why the e2e tests cannot run here
	tmp     string      // removed at the end
	plugin  string      // the built docker-perceptron binary
	rootfs  []byte      // tar of the busybox rootfs, for importing into more daemons
	clis    []dockerBin // docker clients found, cliPaths[0] is the default
	missing []string
	// kinds are the dockerd versions every test runs against, each with
	// its shared daemon; kinds[0] is the dockerd on PATH.
	kinds []*daemonKind

	mu      sync.Mutex
	daemons map[*Daemon]bool // running, for teardown on a signal
	seq     int

	noteInputs sync.Once
}

// ciMode reports whether a missing prerequisite must fail the suite rather
// than skip it.
func ciMode() bool { return os.Getenv("CI") != "" }

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if reason := checkPrerequisites(); reason != "" {
		if ciMode() {
			fmt.Fprintf(os.Stderr, "e2e: CI is set and the end-to-end suite cannot run: %s\n", reason)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: skipping end-to-end tests: %s\n", reason)
		suite.skip = reason
		return m.Run()
	}

	// Go's default SIGINT/SIGTERM handling exits without running deferred
	// calls, which would leave a dockerd and a netns behind.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: tearing down\n", s)
		teardown()
		os.Exit(130)
	}()
	defer teardown()

	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: setup failed: %v\n", err)
		return 1
	}
	if err := runPerDaemon(m); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	return m.Run()
}

// checkPrerequisites returns why the suite cannot run here, or "".
func checkPrerequisites() string {
	if os.Geteuid() != 0 {
		return "needs root (it starts a private dockerd in a network namespace of its own)"
	}
	var missing []string
	for _, bin := range []string{"dockerd", "containerd", "nsenter", "ip", "iptables", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s not found on PATH (Debian: apt-get install docker.io busybox-static iproute2 iptables util-linux)", strings.Join(missing, ", "))
	}
	if bb, _ := exec.LookPath("busybox"); !isStatic(bb) {
		return bb + " is dynamically linked; the test image needs a static one (apt-get install busybox-static)"
	}
	for _, p := range cliCandidates {
		if isExecutable(p) {
			return ""
		}
	}
	return "no docker client at " + strings.Join(cliCandidates, " or ")
}

func setup() error {
	var err error
	cleanStale()
	// The pid in the name lets a later run clean up after a killed one.
	if suite.tmp, err = os.MkdirTemp("", fmt.Sprintf("%s%d-", tmpPrefix, os.Getpid())); err != nil {
		return err
	}

	start := time.Now()
	if suite.plugin, err = buildPlugin(filepath.Join(suite.tmp, "plugin")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2e: plugin ready in %v\n", time.Since(start).Round(time.Millisecond))

	if suite.clis, suite.missing, err = findCLIs(); err != nil {
		return err
	}
	if suite.rootfs, err = busyboxRootfs(); err != nil {
		return err
	}
	if suite.kinds, err = findDaemonKinds(); err != nil {
		return err
	}
	for _, k := range suite.kinds {
		if k.Skip != "" {
			fmt.Fprintf(os.Stderr, "e2e: %s subtests will be skipped: %s\n", k.Name, k.Skip)
			continue
		}
		if k.shared, err = launchDaemon(k, DaemonOptions{}); err != nil {
			return fmt.Errorf("%s (%s): %w", k.Name, k.Dockerd, err)
		}
		fmt.Fprintf(os.Stderr, "e2e: %s is %s, API %s\n", k.Name, k.Dockerd, k.shared.APIVersion)
	}
	if len(suite.kinds) == 2 && suite.kinds[1].shared != nil &&
		suite.kinds[1].shared.APIVersion == suite.kinds[0].shared.APIVersion {
		return fmt.Errorf("%s (%s) and %s (%s) both speak API %s: the dockerd first on PATH must be Debian's 20.10, and %s Docker 29's",
			suite.kinds[0].Name, suite.kinds[0].Dockerd, suite.kinds[1].Name, suite.kinds[1].Dockerd,
			suite.kinds[0].shared.APIVersion, dockerd29Env)
	}
	return nil
}

// dockerd29Env names the Docker 29 dockerd binary the suite also runs
// against; the Makefile sets it to the one "make dockerd29" builds.
const dockerd29Env = "PERCEPTRON_E2E_DOCKERD29"

// daemonKind is a dockerd version the tests run against: "d20", Debian
// 12's dockerd 20.10 (API 1.41) found on PATH, and "d29", Docker 29's
// (moby v2, API 1.5x), built with go install. Every test runs once per
// kind, as subtests with these names (runPerDaemon).
type daemonKind struct {
	Name    string // subtest name: "d20", "d29"
	Dockerd string // the dockerd binary
	// Config is the daemon.json every daemon of this kind starts with.
	Config string
	// Skip, when set, says why this kind's subtests are skipped (never
	// with CI set: setup fails instead).
	Skip string

	shared *Daemon // the shared daemon, with the stand-in NVIDIA hook
}

// findDaemonKinds returns the dockerd binaries to test against: the one on
// PATH, and Docker 29's from PERCEPTRON_E2E_DOCKERD29, else from the
// Makefile's cache (~/.cache/docker-perceptron/dockerd-VERSION/dockerd).
// Not from GOPATH/bin: a dockerd there would shadow Debian's for everyone
// whose PATH lists ~/go/bin first.
func findDaemonKinds() ([]*daemonKind, error) {
	d20, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, err
	}
	kinds := []*daemonKind{
		{Name: "d20", Dockerd: d20, Config: "{}\n"},
		// Debian's runc 1.1 cannot make time namespaces, and its
		// docker-proxy is 20.10's, which dockerd 29 cannot drive.
		{Name: "d29", Config: `{"features": {"time-namespaces": false}, "userland-proxy": false}` + "\n"},
	}
	d29 := kinds[1]
	if p := os.Getenv(dockerd29Env); p != "" {
		d29.Dockerd = p
		if !isExecutable(p) {
			d29.Skip = fmt.Sprintf("%s=%s: no such executable (make dockerd29 builds it)", dockerd29Env, p)
		}
	} else {
		pattern := "~/.cache/docker-perceptron/dockerd-*/dockerd"
		if cache, err := os.UserCacheDir(); err == nil {
			pattern = filepath.Join(cache, "docker-perceptron", "dockerd-*", "dockerd")
			found, _ := filepath.Glob(pattern)
			if len(found) > 0 {
				d29.Dockerd = found[len(found)-1] // the newest version, roughly
			}
		}
		if d29.Dockerd == "" {
			d29.Skip = fmt.Sprintf("no Docker 29 dockerd (none at %s): make dockerd29 builds one, or set %s=/path/to/dockerd",
				pattern, dockerd29Env)
		}
	}
	if d29.Skip != "" && ciMode() {
		return nil, errors.New("CI is set and " + d29.Skip)
	}
	return kinds, nil
}

// runPerDaemon makes every test of the package run once per daemon kind,
// as subtests named after it (TestX/d20, TestX/d29), so that newEnv,
// inspect and startDaemon pick the daemon from the test's name and test
// bodies need no loop of their own. testing.M offers no way to wrap its
// tests, hence reflect and unsafe; should its layout change, the suite
// fails here rather than quietly testing one daemon. Benchmarks are not
// wrapped: they run on kinds[0].
func runPerDaemon(m *testing.M) error {
	v := reflect.ValueOf(m).Elem().FieldByName("tests")
	if !v.IsValid() || v.Type() != reflect.TypeFor[[]testing.InternalTest]() {
		return errors.New("testing.M has no tests []testing.InternalTest field any more: runPerDaemon needs updating")
	}
	tests := (*[]testing.InternalTest)(unsafe.Pointer(v.UnsafeAddr()))
	for i, test := range *tests {
		(*tests)[i].F = func(t *testing.T) {
			for _, k := range suite.kinds {
				t.Run(k.Name, func(t *testing.T) {
					if k.Skip != "" {
						t.Skip(k.Name + " skipped: " + k.Skip)
					}
					test.F(t)
				})
			}
		}
	}
	return nil
}

// kindOf returns the daemon kind t runs under: the one named by the
// subtest level runPerDaemon adds, else (benchmarks) kinds[0].
func kindOf(t testing.TB) *daemonKind {
	if _, rest, ok := strings.Cut(t.Name(), "/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		for _, k := range suite.kinds {
			if k.Name == name {
				return k
			}
		}
	}
	return suite.kinds[0]
}

// teardown stops every daemon still running and removes the suite's files.
// It is safe to call more than once.
func teardown() {
	suite.mu.Lock()
	ds := make([]*Daemon, 0, len(suite.daemons))
	for d := range suite.daemons {
		ds = append(ds, d)
	}
	suite.mu.Unlock()
	for _, d := range ds {
		if err := d.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping daemon %s: %v\n", d.Host, err)
		}
	}
	if suite.tmp != "" {
		unmountUnder(suite.tmp)
		if err := os.RemoveAll(suite.tmp); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		}
	}
}

// moduleRoot finds the directory holding go.mod above the test's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the e2e directory")
		}
		dir = parent
	}
}

// buildPlugin builds the plugin into dir: the ./cmd/docker-perceptron
// launcher, and ./cmd/perceptron-core with the fakenvml tag next to it. With
// PERCEPTRON_E2E_PLUGIN=DIR, it copies the two binaries from DIR instead.
func buildPlugin(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "docker-perceptron")
	if prebuilt := os.Getenv("PERCEPTRON_E2E_PLUGIN"); prebuilt != "" {
		for _, name := range []string{"docker-perceptron", "perceptron-core"} {
			data, err := os.ReadFile(filepath.Join(prebuilt, name))
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
				return "", err
			}
		}
		return out, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if !isExecutable(goBin) {
			goBin = "/usr/local/go/bin/go"
		}
	}
	for _, pkg := range []string{"docker-perceptron", "perceptron-core"} {
		cmd := exec.Command(goBin, "build", "-tags", "fakenvml",
			"-ldflags", "-X main.version=e2e", "-o", filepath.Join(dir, pkg), "./cmd/"+pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build -tags fakenvml ./cmd/%s: %w\n%s", pkg, err, b)
		}
	}
	return out, nil
}

// noteInputs shows go's test cache what the suite's result depends on
// beyond the test binary: the cache notes the files and variables a test
// looks at once m.Run has begun, and the plugin is built by a child
// process, before that. Without it, "go test ./..." could report a cached
// PASS for changed plugin sources. (The Makefile passes -count=1 anyway.)
func noteInputs() {
	for _, v := range []string{"CI", "PERCEPTRON_E2E_PLUGIN", dockerd29Env, "PATH", "HOME", "USER", "GOPATH", "XDG_CACHE_HOME"} {
		_ = os.Getenv(v)
	}
	root, err := moduleRoot()
	if err != nil {
		return
	}
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		_, _ = os.Stat(path)
		return nil
	})
}

// findCLIs returns the docker clients present, and the missing ones.
func findCLIs() (found []dockerBin, missing []string, err error) {
	for _, p := range cliCandidates {
		if !isExecutable(p) {
			missing = append(missing, p)
			continue
		}
		b, err := exec.Command(p, "--version").Output()
		if err != nil {
			return nil, nil, fmt.Errorf("%s --version: %w", p, err)
		}
		// "Docker version 28.2.2, build e6534b4"
		v := strings.TrimPrefix(strings.TrimSpace(string(b)), "Docker version ")
		v, _, _ = strings.Cut(v, ",")
		v, _, _ = strings.Cut(v, "+") // 20.10.24+dfsg1
		found = append(found, dockerBin{Name: "docker-" + v, Path: p})
	}
	return found, missing, nil
}

// busyboxRootfs returns a tar of a minimal root filesystem: a static
// busybox with a symlink per applet.
func busyboxRootfs() ([]byte, error) {
	bbPath, err := exec.LookPath("busybox")
	if err != nil {
		return nil, err
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(bbPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "var"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, bb); err != nil {
		return nil, err
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || name == "bin/busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: "/bin/busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// importImages imports testImage and cuda99Image into d.
func importImages(d *Daemon) error {
	images := []struct {
		name    string
		changes []string
	}{
		{testImage, nil},
		{cuda99Image, []string{"ENV NVIDIA_REQUIRE_CUDA=cuda>=99.0"}},
	}
	for _, img := range images {
		args := []string{"import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--change", `CMD ["sh"]`}
		for _, c := range img.changes {
			args = append(args, "--change", c)
		}
		args = append(args, "-", img.name)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		r := runDocker(ctx, suite.clis[0].Path, d.env(), bytes.NewReader(suite.rootfs), args...)
		cancel()
		if r.ExitCode != 0 {
			return fmt.Errorf("importing %s: %s", img.name, r)
		}
	}
	return nil
}

// DaemonOptions configure startDaemon.
type DaemonOptions struct {
	// WithoutNvidiaHook starts dockerd without the stand-in
	// nvidia-container-runtime-hook on its PATH, so it registers no nvidia
	// GPU driver ("docker run --gpus" fails). PATH directories holding a
	// real hook are left out too.
	WithoutNvidiaHook bool
	// NoImages skips importing testImage and cuda99Image.
	NoImages bool
	// Args are extra dockerd flags.
	Args []string
}

// Daemon is a private dockerd, with its own containerd, in a network
// namespace of its own.
type Daemon struct {
	// Kind is the daemon's kind, "d20" or "d29", for the few expectations
	// that differ between them.
	Kind       string
	APIVersion string // the daemon's, from /version: "1.41"
	Host       string // DOCKER_HOST value, unix://…/docker.sock
	Dir        string // data, exec root, sockets and logs
	NetNS      string // network namespace name
	Log        string // dockerd's log file
	// HookDir holds the stand-in nvidia-container-runtime-hook, first on
	// dockerd's PATH; "" for a daemon started WithoutNvidiaHook.
	HookDir string

	dockerd, containerd *exec.Cmd
	exited              chan struct{} // closed when dockerd exits
	stopOnce            sync.Once
	stopErr             error
}

// startDaemon starts a further private dockerd for t, of t's daemon kind,
// and stops it, with all its containers, when t ends. Most tests use the
// shared one (newEnv).
func startDaemon(t testing.TB, opts DaemonOptions) *Daemon {
	t.Helper()
	requireSuite(t)
	start := time.Now()
	d, err := launchDaemon(kindOf(t), opts)
	if err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	t.Logf("private dockerd %s (%s) ready in %v", d.Host, d.Kind, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd log (%s), last lines:\n%s", d.Log, tail(d.Log, 40))
		}
		if err := d.stop(); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
	})
	return d
}

// requireSuite skips (or, with CI set, fails) t when the suite cannot run.
func requireSuite(t testing.TB) {
	t.Helper()
	suite.noteInputs.Do(noteInputs)
	if suite.skip != "" {
		t.Skip("end-to-end test skipped: " + suite.skip)
	}
}

func launchDaemon(k *daemonKind, opts DaemonOptions) (d *Daemon, err error) {
	suite.mu.Lock()
	suite.seq++
	n := suite.seq
	suite.mu.Unlock()

	dir := filepath.Join(suite.tmp, "d"+strconv.Itoa(n))
	d = &Daemon{
		Kind:   k.Name,
		Dir:    dir,
		Host:   "unix://" + filepath.Join(dir, "docker.sock"),
		NetNS:  fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), n),
		Log:    filepath.Join(dir, "dockerd.log"),
		exited: make(chan struct{}),
	}
	suite.mu.Lock()
	if suite.daemons == nil {
		suite.daemons = map[*Daemon]bool{}
	}
	suite.daemons[d] = true
	suite.mu.Unlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\ndockerd log, last lines:\n%s", err, tail(d.Log, 40))
			_ = d.stop()
		}
	}()

	start := time.Now()
	for _, sub := range []string{"data", "exec", "containerd", "hook"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o711); err != nil {
			return d, err
		}
	}
	if out, err := exec.Command("ip", "netns", "add", d.NetNS).CombinedOutput(); err != nil {
		return d, fmt.Errorf("ip netns add %s: %w: %s", d.NetNS, err, out)
	}
	nsPath := "/var/run/netns/" + d.NetNS
	if out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return d, fmt.Errorf("bringing up lo in %s: %w: %s", d.NetNS, err, out)
	}

	// Its own containerd: left to itself, dockerd 20.10 would use a system
	// containerd at /run/containerd/containerd.sock, shared with the user's
	// Docker.
	ctrdSock := filepath.Join(dir, "containerd", "containerd.sock")
	ctrdConf := filepath.Join(dir, "containerd", "config.toml")
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"), ctrdSock)
	if err := os.WriteFile(ctrdConf, []byte(conf), 0o644); err != nil {
		return d, err
	}
	ctrdLog, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return d, err
	}
	defer ctrdLog.Close()
	d.containerd = exec.Command("nsenter", "--net="+nsPath, "containerd", "--config", ctrdConf)
	d.containerd.Stdout, d.containerd.Stderr = ctrdLog, ctrdLog
	d.containerd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.containerd.Start(); err != nil {
		return d, fmt.Errorf("starting containerd: %w", err)
	}
	go func() { _ = d.containerd.Wait() }()

	// A daemon.json of our own, so that /etc/docker/daemon.json is not read.
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(k.Config), 0o644); err != nil {
		return d, err
	}
	path := os.Getenv("PATH")
	if opts.WithoutNvidiaHook {
		path = pathWithout(path, hookName)
	} else {
		hook := filepath.Join(dir, "hook", hookName)
		// Stands in for the NVIDIA toolkit's OCI prestart hook: dockerd
		// registers its nvidia GPU driver when the hook is on its PATH.
		if err := os.WriteFile(hook, []byte("#!/bin/sh\ncat >/dev/null\nexit 0\n"), 0o755); err != nil {
			return d, err
		}
		d.HookDir = filepath.Dir(hook)
		path = d.HookDir + string(os.PathListSeparator) + path
	}
	logFile, err := os.Create(d.Log)
	if err != nil {
		return d, err
	}
	defer logFile.Close()
	args := []string{"--net=" + nsPath, k.Dockerd,
		"--config-file", daemonJSON,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", d.Host,
		"--containerd", ctrdSock,
	}
	args = append(args, opts.Args...)
	d.dockerd = exec.Command("nsenter", args...)
	d.dockerd.Env = append(envWithout(os.Environ(), "PATH", "DOCKER_"), "PATH="+path)
	d.dockerd.Stdout, d.dockerd.Stderr = logFile, logFile
	d.dockerd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.dockerd.Start(); err != nil {
		return d, fmt.Errorf("starting dockerd: %w", err)
	}
	go func() {
		_ = d.dockerd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(90 * time.Second); err != nil {
		return d, err
	}
	ready := time.Since(start)
	if !opts.NoImages {
		if err := importImages(d); err != nil {
			return d, err
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: dockerd %s (%s) ready in %v, images imported in %v\n",
		d.Host, d.Kind, ready.Round(time.Millisecond), (time.Since(start) - ready).Round(time.Millisecond))
	return d, nil
}

// waitReady polls dockerd's /_ping until it answers OK, then notes its API
// version.
func (d *Daemon) waitReady(timeout time.Duration) error {
	sock := strings.TrimPrefix(d.Host, "unix://")
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		}},
	}
	if err := d.waitPing(client, timeout); err != nil {
		return err
	}
	resp, err := client.Get("http://docker/version")
	if err != nil {
		return fmt.Errorf("GET /version: %w", err)
	}
	defer resp.Body.Close()
	var v struct{ APIVersion string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return fmt.Errorf("GET /version: %w", err)
	}
	d.APIVersion = v.APIVersion
	return nil
}

func (d *Daemon) waitPing(client *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited during start: %v", d.dockerd.ProcessState)
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("dockerd did not answer on %s within %v", d.Host, timeout)
}

// env is the environment for a docker client talking to d and nothing else.
func (d *Daemon) env() []string {
	return append(envWithout(os.Environ(), "DOCKER_", "PERCEPTRON_"),
		"DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+filepath.Join(d.Dir, "client-config"), "DOCKER_CLI_HINTS=false")
}

// stop removes d's containers, stops dockerd and containerd, and removes the
// network namespace. The data directory goes with the suite's.
func (d *Daemon) stop() error {
	d.stopOnce.Do(func() { d.stopErr = d.doStop() })
	return d.stopErr
}

func (d *Daemon) doStop() error {
	var errs []error
	if d.dockerd != nil && d.dockerd.Process != nil {
		select {
		case <-d.exited:
		default:
			if err := d.removeAllContainers(); err != nil {
				errs = append(errs, err)
			}
			_ = d.dockerd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				_ = d.dockerd.Process.Kill()
				<-d.exited
				errs = append(errs, errors.New("dockerd did not stop on SIGTERM within 30s; killed"))
			}
		}
	}
	if d.containerd != nil && d.containerd.Process != nil {
		_ = d.containerd.Process.Signal(syscall.SIGTERM)
		waitGone(d.containerd.Process.Pid, 15*time.Second)
	}
	killLeftovers(d.Dir)
	if _, err := os.Stat("/var/run/netns/" + d.NetNS); err == nil {
		if out, err := exec.Command("ip", "netns", "delete", d.NetNS).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %w: %s", d.NetNS, err, out))
		}
	}
	suite.mu.Lock()
	delete(suite.daemons, d)
	suite.mu.Unlock()
	return errors.Join(errs...)
}

// removeAllContainers force-removes every container d knows.
func (d *Daemon) removeAllContainers() error {
	ids, err := d.containerIDs()
	if err != nil {
		return err
	}
	return d.removeContainers(ids)
}

func (d *Daemon) containerIDs() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runDocker(ctx, suite.clis[0].Path, d.env(), nil, "ps", "--all", "--quiet", "--no-trunc")
	if r.ExitCode != 0 {
		return nil, fmt.Errorf("listing containers: %s", r)
	}
	return strings.Fields(r.Stdout), nil
}

func (d *Daemon) removeContainers(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := runDocker(ctx, suite.clis[0].Path, d.env(), nil, append([]string{"rm", "--force", "--volumes"}, ids...)...)
	if r.ExitCode != 0 && !strings.Contains(r.Stderr, "No such container") {
		return fmt.Errorf("removing containers: %s", r)
	}
	return nil
}

// Result is what one docker command printed and returned.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int // -1: it did not run or was killed
}

func (r Result) String() string {
	return fmt.Sprintf("docker %s: exit %d\nstdout:\n%s\nstderr:\n%s",
		strings.Join(r.Args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

func runDocker(ctx context.Context, bin string, env []string, stdin io.Reader, args ...string) Result {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: cmd.ProcessState.ExitCode()}
	if err != nil && r.ExitCode <= 0 {
		r.ExitCode = -1
		r.Stderr += "\n[e2e: " + err.Error() + "]"
	}
	return r
}

// Env is one test's view: a daemon, a docker client, a DOCKER_CONFIG with
// the plugin installed, a fresh PERCEPTRON_STATE_DIR and, when set, a fake
// NVML inventory. Fields may be changed between commands.
type Env struct {
	t      testing.TB
	Daemon *Daemon
	CLI    dockerBin
	// Config is DOCKER_CONFIG, holding cli-plugins/docker-perceptron; user
	// presets written here are the test's own.
	Config string
	// StateDir is PERCEPTRON_STATE_DIR. Give two Envs the same one to let
	// them see each other's GPU claims.
	StateDir string
	// FakeNVML is PERCEPTRON_FAKE_NVML, from writeFakeNVML; "" leaves it
	// unset.
	FakeNVML string
	// Extra is appended to the environment, KEY=VALUE.
	Extra []string
	// Timeout bounds each command; default 2 minutes.
	Timeout time.Duration
}

// newEnv returns an Env on the shared daemon of t's kind (d20 or d29) with
// the default docker client. Containers created on that daemon while the
// test runs are removed when it ends, so tests using it must not call
// t.Parallel.
func newEnv(t testing.TB) *Env {
	t.Helper()
	requireSuite(t)
	return newEnvOn(t, kindOf(t).shared)
}

// newEnvOn is newEnv for a daemon from startDaemon.
func newEnvOn(t testing.TB, d *Daemon) *Env {
	t.Helper()
	requireSuite(t)
	e := &Env{
		t:        t,
		Daemon:   d,
		CLI:      suite.clis[0],
		Config:   t.TempDir(),
		StateDir: t.TempDir(),
		Timeout:  2 * time.Minute,
	}
	plugins := filepath.Join(e.Config, "cli-plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(suite.plugin, filepath.Join(plugins, "docker-perceptron")); err != nil {
		t.Fatal(err)
	}
	before, err := d.containerIDs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd log (%s), last lines:\n%s", d.Log, tail(d.Log, 20))
		}
		select {
		case <-d.exited:
			return // stopped already, containers and all
		default:
		}
		after, err := d.containerIDs()
		if err != nil {
			t.Error(err)
			return
		}
		var created []string
		for _, id := range after {
			if !slices.Contains(before, id) {
				created = append(created, id)
			}
		}
		if err := d.removeContainers(created); err != nil {
			t.Error(err)
		}
	})
	return e
}

// environ is the environment the docker client runs with.
func (e *Env) environ() []string {
	env := append(envWithout(os.Environ(), "DOCKER_", "PERCEPTRON_"),
		"DOCKER_HOST="+e.Daemon.Host,
		"DOCKER_CONFIG="+e.Config,
		"DOCKER_CLI_HINTS=false",
		"PERCEPTRON_STATE_DIR="+e.StateDir,
	)
	if e.FakeNVML != "" {
		env = append(env, "PERCEPTRON_FAKE_NVML="+e.FakeNVML)
	}
	return append(env, e.Extra...)
}

// Docker runs the docker client with args and returns what it did; a
// non-zero exit is not a test failure.
func (e *Env) Docker(args ...string) Result {
	e.t.Helper()
	return e.DockerStdin(nil, args...)
}

// DockerStdin is Docker with stdin; nil means no input.
func (e *Env) DockerStdin(stdin io.Reader, args ...string) Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.Timeout)
	defer cancel()
	r := runDocker(ctx, e.CLI.Path, e.environ(), stdin, args...)
	if ctx.Err() != nil {
		e.t.Errorf("docker %s: timed out after %v", strings.Join(args, " "), e.Timeout)
	}
	return r
}

// MustDocker runs docker with args, fails the test unless it exits 0, and
// returns its trimmed stdout.
func (e *Env) MustDocker(args ...string) string {
	e.t.Helper()
	r := e.Docker(args...)
	if r.ExitCode != 0 {
		e.t.Fatalf("%s", r)
	}
	return strings.TrimSpace(r.Stdout)
}

// Inspect returns "docker inspect --format template id", trimmed.
func (e *Env) Inspect(id, template string) string {
	e.t.Helper()
	return e.MustDocker("inspect", "--format", template, id)
}

// inspect is Env.Inspect on the shared daemon of t's kind.
func inspect(t testing.TB, id, template string) string {
	t.Helper()
	requireSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runDocker(ctx, suite.clis[0].Path, kindOf(t).shared.env(), nil, "inspect", "--format", template, id)
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	return strings.TrimSpace(r.Stdout)
}

// cliPaths returns the docker clients to run a test through: the stock
// client first, then Debian's. Missing ones fail the test under CI and are
// skipped otherwise.
func cliPaths(t testing.TB) []dockerBin {
	t.Helper()
	requireSuite(t)
	if len(suite.missing) > 0 {
		msg := "docker client not found: " + strings.Join(suite.missing, ", ")
		if ciMode() {
			t.Error(msg)
		} else {
			t.Log(msg + "; testing with the others")
		}
	}
	return suite.clis
}

// forEachCLI runs fn as a subtest per docker client, with an Env using it.
func forEachCLI(t *testing.T, fn func(t *testing.T, e *Env)) {
	t.Helper()
	for _, c := range cliPaths(t) {
		t.Run(c.Name, func(t *testing.T) {
			e := newEnv(t)
			e.CLI = c
			fn(t, e)
		})
	}
}

// envWithout drops the variables whose name starts with any of prefixes.
func envWithout(env []string, prefixes ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			out = append(out, kv)
		}
	}
	return out
}

// pathWithout drops the PATH entries holding an executable named bin.
func pathWithout(path, bin string) string {
	var keep []string
	for _, dir := range filepath.SplitList(path) {
		if !isExecutable(filepath.Join(dir, bin)) {
			keep = append(keep, dir)
		}
	}
	return strings.Join(keep, string(os.PathListSeparator))
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// isStatic reports whether the ELF file at path has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// cleanStale removes what suites killed before their teardown left behind:
// their containers, shims, mounts, directories and network namespaces.
func cleanStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpPrefix+"*"))
	for _, dir := range dirs {
		if pidStr, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(dir), tmpPrefix), "-"); ok {
			if pid, err := strconv.Atoi(pidStr); err == nil && pid != os.Getpid() && !processAlive(pid) {
				fmt.Fprintf(os.Stderr, "e2e: removing %s, left by a killed run\n", dir)
				killLeftovers(dir)
				_ = os.RemoveAll(dir)
			}
		}
	}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
	}
}

// killLeftovers force-deletes the containers whose runc state is under dir
// (dockerd keeps it in <exec-root>/runtime-runc), kills the processes whose
// command line names dir (shims; only this suite's have it), and unmounts
// what is mounted below dir.
func killLeftovers(dir string) {
	roots, _ := filepath.Glob(filepath.Join(dir, "*", "exec", "runtime-runc", "*"))
	more, _ := filepath.Glob(filepath.Join(dir, "exec", "runtime-runc", "*"))
	for _, root := range append(roots, more...) {
		out, err := exec.Command("runc", "--root", root, "list", "--quiet").Output()
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command("runc", "--root", root, "delete", "--force", id).Run()
		}
	}
	for _, pid := range pidsMentioning(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(dir)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func waitGone(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if processAlive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsMentioning returns the processes whose command line contains s.
func pidsMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount at or below dir, deepest first, so
// that removing dir cannot reach through a mount left behind.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, mp := range points {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
