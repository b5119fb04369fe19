package app

import "github.com/spf13/cobra"

// Not built yet: see the lab issue.
func newLabCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "lab",
		Short:              "The local lab: a real control plane and kube-proxy on network namespaces (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the lab issue")
		},
	}
}
