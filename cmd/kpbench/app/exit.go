package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses: one contract for every command (README.md, "Exit status").
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitFailed: a verdict failed (a compare regression), a measurement was
	// invalid where the command promises validity, or the command could not
	// do its work (a failure that is not the input's fault).
	ExitFailed = 1
	// ExitUsage: bad input of any kind: flags, arguments, unknown names,
	// scenario or config errors.
	ExitUsage = 2
	// ExitInterrupted: SIGINT or SIGTERM (128 + SIGINT, as shells report it).
	ExitInterrupted = 130
	// ExitCannotRun and ExitNotFound: lab exec could not run the command
	// (found but not executable, or not found), as shells report it.
	ExitCannotRun = 126
	ExitNotFound  = 127
)

// ExitError carries a specific exit status (see the Exit* constants).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// badInput marks err as bad input: exit status 2.
func badInput(err error) error {
	var exit *ExitError
	if errors.As(err, &exit) {
		return err
	}
	return &ExitError{Code: ExitUsage, Err: err}
}

// usageError is bad input found by the command line parser (an unknown
// flag or command, a flag value of the wrong type, a wrong number of
// arguments): exit 2 and a pointer to the command's help, as kubectl does.
type usageError struct {
	cmd  *cobra.Command
	err  error
	hint string
}

func (e *usageError) Error() string {
	msg := e.err.Error()
	if e.hint != "" {
		msg += "\n" + e.hint
	}
	return fmt.Sprintf("%s\nSee '%s --help'.", msg, e.cmd.CommandPath())
}

func (e *usageError) Unwrap() error { return e.err }

// execHint is added to a flag error of a command that runs another command
// (lab exec): the usual cause is the other command's flags, which need --.
const execHint = "Put -- before the command so that its flags are its own: kpbench lab exec -- ip -br addr"

// enforceUsageContract makes every command of the tree report parse errors
// as usage errors: flag errors, argument-count errors, and unknown
// subcommands of a command group (which cobra would answer with help and
// exit 0).
func enforceUsageContract(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		ue := &usageError{cmd: cmd, err: err}
		if cmd.Annotations[annotationRunsCommand] == "true" {
			ue.hint = execHint
		}
		return ue
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return &usageError{cmd: cmd, err: err}
				}
				return nil
			}
		}
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			// A group: help without arguments, an error for a command it
			// does not have.
			c.Args = nil
			c.RunE = func(cmd *cobra.Command, a []string) error {
				if len(a) > 0 {
					return &usageError{cmd: cmd, err: fmt.Errorf("unknown command %q for %q%s", a[0], cmd.CommandPath(), suggest(cmd, a[0]))}
				}
				return cmd.Help()
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// annotationRunsCommand marks a command whose arguments are another
// command line (lab exec).
const annotationRunsCommand = "kpbench/runs-command"

func suggest(cmd *cobra.Command, typed string) string {
	if s := cmd.SuggestionsFor(typed); len(s) > 0 {
		return "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return ""
}

// exitCode prints err (if any) on stderr and returns the exit status it
// means under the contract.
func exitCode(ctx context.Context, stderr io.Writer, err error, verbose int) int {
	if err == nil {
		return ExitOK
	}
	code := ExitFailed
	var (
		exit  *ExitError
		usage *usageError
	)
	switch {
	case errors.As(err, &exit):
		code = exit.Code
	case errors.As(err, &usage):
		code = ExitUsage
	case isCobraUsage(err):
		code = ExitUsage
	}
	if ctx.Err() != nil && code != ExitOK {
		code = ExitInterrupted
	}
	if exit == nil || exit.Err != nil {
		fmt.Fprintln(stderr, "kpbench:", err)
		if verbose > 0 && code != ExitUsage {
			fmt.Fprintf(stderr, "%+v\n", err)
		}
	}
	return code
}

// isCobraUsage recognises the usage errors cobra returns without a type
// of their own: an unknown top-level command, a required flag not set, and
// an argument its own commands (completion) do not take.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "required flag(s) ", "invalid argument "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
