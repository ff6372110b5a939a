package commands

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// announceWait is how long a detached run waits for its server to log the
// URL it serves.
const announceWait = 30 * time.Second

// announceURL prints, for a detached run whose preset offers a web page on
// container port port (Jupyter, TensorBoard), the URL to open: the host
// port docker published it on, and the rest (a token) from the first URL
// the server logs for that port, within announceWait; then how to reach a
// port published on 127.0.0.1 from another machine.
func announceURL(ctx context.Context, dockerCLI command.Cli, api DockerAPI, cidFile, port string) {
	b, err := os.ReadFile(cidFile)
	id := strings.TrimSpace(string(b))
	if err != nil || id == "" {
		return
	}
	res, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.NetworkSettings == nil {
		return
	}
	host := hostPort(res.Container.NetworkSettings.Ports, port)
	if host == "" {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: container port %s is not published: add -p 127.0.0.1::%s to reach it\n", port, port)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, announceWait)
	defer cancel()
	url := "http://" + host + "/"
	if path, ok := loggedPath(ctx, api, id, port); ok {
		url = "http://" + host + path
	} else {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: the server logged no URL within %s; 'docker logs %s' shows what it says\n", announceWait, id[:min(12, len(id))])
	}
	_, _ = fmt.Fprintf(dockerCLI.Err(), "Open %s\n", url)
	if strings.HasPrefix(host, "127.0.0.1:") {
		p := strings.TrimPrefix(host, "127.0.0.1:")
		_, _ = fmt.Fprintf(dockerCLI.Err(), "From your own machine: ssh -N -L %s:127.0.0.1:%s USER@THIS-SERVER, then open http://localhost:%s%s\n", p, p, p, strings.TrimPrefix(url, "http://"+host))
	}
}

// hostPort is "IP:PORT" of the first binding of container port port/tcp.
func hostPort(ports network.PortMap, port string) string {
	for p, bindings := range ports {
		if p.Port() != port || p.Proto() != network.TCP {
			continue
		}
		for _, b := range bindings {
			ip := "127.0.0.1"
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				ip = b.HostIP.String()
			}
			if b.HostPort != "" {
				return ip + ":" + b.HostPort
			}
		}
	}
	return ""
}

// loggedPath follows the container's log until a URL on port shows, and
// returns what follows the port ("/lab?token=…").
func loggedPath(ctx context.Context, api DockerAPI, id, port string) (string, bool) {
	logs, err := api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return "", false
	}
	defer logs.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, logs)
		_ = pw.CloseWithError(err)
	}()
	re := regexp.MustCompile(`https?://[^\s/]+:` + regexp.QuoteMeta(port) + `(/[^\s]*)?`)
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			if m[1] == "" {
				return "/", true
			}
			return m[1], true
		}
	}
	return "", false
}
