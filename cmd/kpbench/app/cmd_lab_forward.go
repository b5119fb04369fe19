package app

// The hidden `kpbench lab forward` command: the apiserver forwarder
// `lab up` starts. Not for people.

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/clusters/lab"
)

// newLabForwardCmd is the apiserver forwarder `lab up` starts: it serves a
// listening socket it inherits and dials the apiserver inside the
// control-plane namespace. Not for people.
func newLabForwardCmd(g *globals) *cobra.Command {
	var (
		fd      int
		nsPath  string
		to      string
		address string
	)
	cmd := &cobra.Command{
		Use:    "forward",
		Short:  "Forward a loopback port to an address inside a network namespace (used by lab up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				ln  net.Listener
				err error
			)
			switch {
			case fd > 0:
				ln, err = net.FileListener(os.NewFile(uintptr(fd), "listener"))
			case address != "":
				if !strings.HasPrefix(address, "127.") {
					return &ExitError{Code: 2, Err: fmt.Errorf("--listen %s: the forwarder only listens on loopback", address)}
				}
				ln, err = net.Listen("tcp", address)
			default:
				return &ExitError{Code: 2, Err: fmt.Errorf("give --listen-fd or --listen")}
			}
			if err != nil {
				return fmt.Errorf("forwarder listener: %w", err)
			}
			return lab.Forward(cmd.Context(), ln, nsPath, to, g.logger)
		},
	}
	cmd.Flags().IntVar(&fd, "listen-fd", 0, "inherited listening socket")
	cmd.Flags().StringVar(&address, "listen", "", "loopback address to listen on instead of an inherited socket")
	cmd.Flags().StringVar(&nsPath, "netns", "", "network namespace to dial from (path)")
	cmd.Flags().StringVar(&to, "to", "", "address to dial (IP:port)")
	_ = cmd.MarkFlagRequired("netns")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
