package app

import "github.com/spf13/cobra"

// Not built yet: see the kind and existing clusters issue.
func newClusterCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "cluster",
		Short:              "Create and delete kind clusters for kpbench (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the kind and existing clusters issue")
		},
	}
}
