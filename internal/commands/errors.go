package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// errChecksFailed is returned by doctor when a check failed.
type errChecksFailed struct{ n int }

func (e errChecksFailed) Error() string {
	if e.n == 1 {
		return "1 check failed"
	}
	return fmt.Sprintf("%d checks failed", e.n)
}

// toStatusError is the one place an error becomes an exit status, as
// docker/cli's own toStatusError: docker's (the stock run's, the
// container's exit status) pass as they are; a host without a usable NVIDIA
// driver, failed doctor checks and a gpus listing that could not see who
// holds the GPUs exit 1; a wait ended by a signal exits 128+N (130 for
// Ctrl-C), as a process it ends; every other error of docker
// perceptron's exits 125, as docker run's own errors do. The error stays the
// Cause, so callers can still errors.As the domain packages' typed errors.
func toStatusError(err error) error {
	var status cli.StatusError
	var sig interrupted
	switch {
	case err == nil:
		return nil
	case errors.As(err, &status):
		return err
	case errors.As(err, &sig):
		return cli.StatusError{StatusCode: 128 + int(sig.sig), Status: err.Error(), Cause: err}
	case errors.Is(err, gpus.ErrNoDriver), errors.As(err, new(errChecksFailed)), errors.As(err, new(*cannotSeeError)):
		return cli.StatusError{StatusCode: 1, Status: err.Error(), Cause: err}
	}
	return cli.StatusError{StatusCode: 125, Status: err.Error(), Cause: err}
}

// withStatus makes every command under cmd map its errors with
// toStatusError.
func withStatus(cmd *cobra.Command) *cobra.Command {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return toStatusError(run(c, args)) }
	}
	// Usage errors (argument count, unknown options) are the tool's own
	// errors too: 125, as the rest.
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return toStatusError(args(c, a)) }
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return toStatusError(fmt.Errorf("%w\nSee '%s --help'.", err, "docker "+c.CommandPath()))
	})
	for _, sub := range cmd.Commands() {
		withStatus(sub)
	}
	return cmd
}

// unknownCommand refuses a subcommand that does not exist, as docker does,
// with the closest ones; the root alone prints its help.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command: docker %s %s", cmd.CommandPath(), args[0])
	if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(near, "\n\t")
	}
	return errors.New(msg + "\n\nRun 'docker " + cmd.CommandPath() + " --help' for more information")
}
