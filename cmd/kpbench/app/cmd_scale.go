package app

import "github.com/spf13/cobra"

// Not built yet: see the Service scaler issue.
func newScaleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "scale",
		Short:              "Bring the number of synthetic Services to exactly N (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the Service scaler issue")
		},
	}
}
