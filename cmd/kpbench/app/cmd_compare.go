package app

import "github.com/spf13/cobra"

// Not built yet: see the report issue.
func newCompareCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "compare",
		Short:              "Compare two runs and fail on significant regressions (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the report issue")
		},
	}
}
