package app

import "github.com/spf13/cobra"

// Not built yet: see the loadgen issue.
func newLoadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "load",
		Short:              "Open-loop fixed-rate HTTP load (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the loadgen issue")
		},
	}
}
