package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/scenarios"
)

func newScenarioCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scenario",
		Short: "Validate, show and list scenarios",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "validate FILE...",
			Short: "Check scenario files and report every problem with its field path",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				failed := 0
				for _, ref := range args {
					if _, err := scenarios.Resolve(ref); err != nil {
						fmt.Fprintf(g.stderr, "%s: invalid: %v\n", ref, err)
						failed++
						continue
					}
					fmt.Fprintf(g.stdout, "%s: valid\n", ref)
				}
				if failed > 0 {
					return &ExitError{Code: ExitUsage}
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "show NAME|FILE",
			Short: "Print the effective scenario, defaults filled in",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := scenarios.Resolve(args[0])
				if err != nil {
					// A scenario with mistakes, or no file and no catalog
					// entry of that name: both are bad input.
					return badInput(err)
				}
				out, err := scenarios.Marshal(s)
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(out)
				return err
			},
		},
		&cobra.Command{
			Use:   "list",
			Short: "List the scenarios built into kpbench",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				for _, name := range scenarios.CatalogNames() {
					s, _, err := scenarios.FromCatalog(name)
					if err != nil {
						return err
					}
					fmt.Fprintf(g.stdout, "%-14s %d modes × %d Service steps (max %d) × %d variants × %d %s × %d reps, %s per point at %g req/s, order %s\n",
						name, len(s.Spec.Modes), len(s.Spec.Services), s.Spec.Services[len(s.Spec.Services)-1],
						len(s.Spec.Load.RequestsPerConn), len(s.Spec.Load.Targets), plural(len(s.Spec.Load.Targets), "placement", "placements"),
						s.Spec.Repetitions, s.Spec.Load.Duration, s.Spec.Load.Rate, s.Spec.Order)
				}
				return nil
			},
		},
	)
	return cmd
}
