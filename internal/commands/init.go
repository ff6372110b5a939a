package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ngc"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

type initOptions struct {
	framework string
	driver    string
	tag       string
	force     bool
}

func newInitCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init [OPTIONS] [DIR]",
		Short: "Write a Dockerfile FROM the newest NGC release this host's driver runs",
		Long: "Write a Dockerfile, a .dockerignore and (when missing) a requirements.txt in DIR (default: the current\n" +
			"directory), FROM the newest NGC release of the framework that this host's NVIDIA driver runs natively.",
		Args: cli.RequiresMaxArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runInit(dockerCLI, deps, o, dir)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.framework, "framework", "pytorch", "The framework image: pytorch, tensorflow or jax")
	flags.StringVar(&o.driver, "driver", "", "Choose for this NVIDIA driver `VERSION` (the GPU server's) instead of this host's")
	flags.StringVar(&o.tag, "tag", "", "Build FROM this `IMAGE` instead of choosing one")
	flags.BoolVarP(&o.force, "force", "f", false, "Overwrite an existing Dockerfile and .dockerignore")
	return cmd
}

// trainPresets is the training preset of each framework.
var trainPresets = map[string]string{"pytorch": "pytorch-train", "tensorflow": "tf-train", "jax": "jax-train"}

func runInit(dockerCLI command.Cli, deps Deps, o initOptions, dir string) error {
	preset, ok := trainPresets[o.framework]
	if !ok {
		return fmt.Errorf("invalid --framework %s: use pytorch, tensorflow or jax", presets.Echo(o.framework))
	}
	base, why, err := initBase(deps, o)
	if err != nil {
		return err
	}
	s := ngc.NewScaffold(base, why)
	files := []initFile{{"Dockerfile", s.Dockerfile, true}, {".dockerignore", s.DockerIgnore, true}, {"requirements.txt", s.Requirements, false}}
	if err := writeInitFiles(dir, files, o.force); err != nil {
		return err
	}
	name := imageName(dir)
	_, _ = fmt.Fprintf(dockerCLI.Out(), "Wrote %s FROM %s.\nNext:\n  docker build -t %s %s\n  docker perceptron run --preset %s %s\n",
		filepath.Join(dir, "Dockerfile"), base, name, shellQuote(dir), preset, name)
	return nil
}

// initBase is the image to build FROM, and a sentence saying why.
func initBase(deps Deps, o initOptions) (base, why string, err error) {
	if o.tag != "" {
		return o.tag, "The base image was given with --tag.", nil
	}
	table, err := ngc.Default()
	if err != nil {
		return "", "", err
	}
	img, ok := table.Image(o.framework)
	if !ok {
		return "", "", fmt.Errorf("docker perceptron's table of NGC releases has no %s image yet: give --tag IMAGE", o.framework)
	}
	host, err := ngcHost(deps, o.driver)
	if errors.Is(err, gpus.ErrNoDriver) {
		return "", "", fmt.Errorf("no NVIDIA driver on this host to choose the base image for: give --driver VERSION (the GPU server's, from nvidia-smi) or --tag IMAGE")
	}
	if err != nil {
		return "", "", err
	}
	r, ok := table.NewestNative(img, host.Driver)
	if !ok {
		return "", "", fmt.Errorf("no %s release in docker perceptron's table runs natively on NVIDIA driver %s: install a newer driver, or give --tag IMAGE", o.framework, host.Driver)
	}
	return img.Ref(r), fmt.Sprintf("The newest %s release that NVIDIA driver %s runs natively\n# (CUDA %s needs %s or newer; 'docker perceptron ngc %s' lists the others).", o.framework, host.Driver, r.CUDA, r.MinDriver, o.framework), nil
}

type initFile struct {
	name, content string
	replace       bool // with --force; else an existing file is kept
}

// writeInitFiles writes the files into dir (created if missing). An
// existing Dockerfile or .dockerignore is an error without force, checked
// before anything is written; an existing requirements.txt is kept.
func writeInitFiles(dir string, files []initFile, force bool) error {
	var exist []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil && f.replace {
			exist = append(exist, f.name)
		}
	}
	if len(exist) > 0 && !force {
		return fmt.Errorf("%s already has %s: nothing was written; use --force to overwrite", dir, strings.Join(exist, " and "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if _, err := os.Lstat(path); err == nil && !f.replace {
			continue
		}
		if err := os.WriteFile(path, []byte(f.content), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
	}
	return nil
}

// imageName is a docker image name from dir's name: lower case, only the
// characters a repository name allows.
func imageName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "my-image"
	}
	name := regexp.MustCompile(`[^a-z0-9._-]+`).ReplaceAllString(strings.ToLower(filepath.Base(abs)), "-")
	name = strings.Trim(name, "._-")
	if name == "" {
		return "my-image"
	}
	return name
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if regexp.MustCompile(`^[A-Za-z0-9_./-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
