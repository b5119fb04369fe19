package app

import "github.com/spf13/cobra"

// Not built yet: see the collector issue.
func newSampleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "sample",
		Short:              "Sample node and process CPU from /proc (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the collector issue")
		},
	}
}
