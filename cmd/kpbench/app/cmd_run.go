package app

import "github.com/spf13/cobra"

// Not built yet: see the sweep issue.
func newRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "run",
		Short:              "Run a scenario end to end and write a results directory (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the sweep issue")
		},
	}
}
