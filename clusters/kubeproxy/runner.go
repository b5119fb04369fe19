package kubeproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Runner runs a command on the client node and returns its stdout.
type Runner func(ctx context.Context, args ...string) ([]byte, error)

// ExecRunner runs commands on this machine.
func ExecRunner() Runner {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		if len(args) == 0 {
			return nil, errors.New("no command")
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		return stdout.Bytes(), nil
	}
}

// NodeRunner adapts a run function with the signature of
// clusters.ClientNode.Run (pass the method value: NodeRunner(node.Run)).
func NodeRunner(run func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error) Runner {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		var stdout, stderr bytes.Buffer
		if err := run(ctx, nil, &stdout, &stderr, args...); err != nil {
			return nil, fmt.Errorf("%s on the client node: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		return stdout.Bytes(), nil
	}
}
