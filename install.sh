#!/usr/bin/env bash
# Builds docker-perceptron from this checkout and installs it as a Docker
# CLI plugin. GOFLAGS (for example GOFLAGS=-tags=fakenvml) apply to the build.
set -euo pipefail

usage() {
	cat <<USAGE
Usage: ./install.sh [--system | --dest DIR]

Build docker-perceptron from this checkout and install it as a Docker CLI plugin.

Options:
  --system    install for all users into /usr/local/lib/docker/cli-plugins, with
              the GPU claims' shared state directory /run/docker-perceptron
              (root's, mode 1777, made again at every boot)
  --dest DIR  install into DIR
  -h, --help  show this help

Without options it installs into \${DOCKER_CONFIG:-\$HOME/.docker}/cli-plugins.
The build needs Go and cgo (gcc); GOFLAGS and the other go environment apply.
USAGE
}

dest="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
system=false
while [ $# -gt 0 ]; do
	case "$1" in
	--system) dest=/usr/local/lib/docker/cli-plugins system=true ;;
	--dest)
		[ $# -ge 2 ] || { echo "install.sh: --dest needs a directory" >&2; exit 2; }
		dest="$2"
		shift
		;;
	--dest=*) dest="${1#--dest=}" ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

cd "$(dirname "$0")"

go="${GO:-go}"
if ! command -v "$go" >/dev/null 2>&1; then
	# sudo's secure_path usually leaves out the Go install.
	if [ -x /usr/local/go/bin/go ]; then
		go=/usr/local/go/bin/go
	else
		echo "install.sh: the go command is needed to build docker-perceptron (https://go.dev/dl/)" >&2
		exit 1
	fi
fi

version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"

# go-nvml's C header marks NVML calls deprecated, and cgo compiles a wrapper
# for each: pages of gcc warnings about code that is not ours. Quieten them
# unless CGO_CFLAGS is set; real errors still print and stop the script.
if [ -z "${CGO_CFLAGS:-}" ]; then
	CGO_CFLAGS="$("$go" env CGO_CFLAGS) -Wno-deprecated-declarations"
	export CGO_CFLAGS
fi

step() { echo "==> $*"; }

# Two programs: the docker-perceptron launcher, which the docker CLI runs
# for the plugin's metadata (kept light), and perceptron-core next to it,
# which runs the commands. Each is built to a temporary name and renamed,
# so a running copy is never overwritten in place.
mkdir -p "$dest"
tmpdir="$(mktemp -d "$dest/.docker-perceptron.XXXXXX")"
trap 'rm -rf "$tmpdir"' EXIT
for prog in perceptron-core docker-perceptron; do
	step "Building $prog $version"
	"$go" build -ldflags "-X main.version=$version" -o "$tmpdir/$prog" "./cmd/$prog"
	chmod 0755 "$tmpdir/$prog"
done
step "Installing into $dest"
mv -f "$tmpdir/perceptron-core" "$dest/perceptron-core"
mv -f "$tmpdir/docker-perceptron" "$dest/docker-perceptron"
rm -rf "$tmpdir"
trap - EXIT

echo "Installed docker-perceptron $version to $dest/docker-perceptron"
if $system; then
	# The GPU claims of every user meet in one directory that only root can
	# make: no user can take it first, or delete the others' claims.
	state=/run/docker-perceptron
	step "Making the shared state directory $state (mode 1777)"
	if [ -d /etc/tmpfiles.d ]; then
		echo "d $state 1777 root root -" >/etc/tmpfiles.d/docker-perceptron.conf
	fi
	if [ -e "$state" ] && [ "$(stat -c %u "$state")" != 0 ]; then
		echo "install.sh: $state exists and is not root's: remove it, then run this again" >&2
		exit 1
	fi
	mkdir -p "$state"
	chmod 1777 "$state"
	echo "GPU claims of every user meet in $state (made again at boot by systemd-tmpfiles)."
	echo "A copy in ~/.docker/cli-plugins, if any, takes precedence for that user."
fi
echo "Try it: docker perceptron --help"
