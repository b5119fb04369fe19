package app

import "github.com/spf13/cobra"

// Not built yet: see the kind and existing clusters issue.
func newImageCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "image",
		Short:              "Build the kpbench container image (not built yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt(cmd.CommandPath()[len("kpbench "):], "the kind and existing clusters issue")
		},
	}
}
