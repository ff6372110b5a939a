//go:build linux

package preflight

import (
	"net"
	"net/url"
	"time"

	"golang.org/x/sys/unix"
)

// socketPeerPID returns the pid of the process that listens on dockerHost, a
// unix:// socket, from the connection's peer credentials (SO_PEERCRED: the
// process that called listen, so systemd's for a socket-activated daemon).
func socketPeerPID(dockerHost string) (int, bool) {
	if dockerHost == "" {
		dockerHost = "unix:///var/run/docker.sock"
	}
	u, err := url.Parse(dockerHost)
	if err != nil || u.Scheme != "unix" || u.Path == "" {
		return 0, false
	}
	conn, err := net.DialTimeout("unix", u.Path, 2*time.Second)
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil || cred.Pid <= 0 {
		return 0, false
	}
	return int(cred.Pid), true
}
