package app

import "github.com/spf13/cobra"

// Not built yet: see the report issue.
func newReportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "report",
		Short:              "Write plots and a report for a results directory (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the report issue")
		},
	}
}
