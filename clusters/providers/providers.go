// Package providers builds a clusters.Provider by name. It is the one
// place that knows every provider, as clusterloader2's NewProvider is: a
// new provider is its own package under clusters/ plus one entry in
// factories below (and its options field in Options).
//
// The factory lives here rather than in package clusters because every
// provider imports clusters for the interface.
package providers

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/lab"
)

// Options are what a provider is built from. The common fields come from
// the scenario and the run's flags and override the same fields of the
// provider's own options; each provider reads only its own section.
type Options struct {
	// Backends is the number of backend pods (the scenario's
	// spec.backends).
	Backends int
	// LoadClients is the number of load clients per window (the
	// scenario's spec.load.clients); kind makes at least one client node
	// per client.
	LoadClients int
	// Keep leaves what the provider made at Down (run --keep).
	Keep bool
	// Logger receives the provider's progress.
	Logger *slog.Logger

	Lab      lab.Config
	Kind     kind.Options
	Existing existing.Options
}

// factories are the providers, in the order help texts list them.
var factories = []struct {
	name string
	new  func(Options) (clusters.Provider, error)
}{
	{"lab", func(o Options) (clusters.Provider, error) {
		c := o.Lab
		c.Backends, c.Keep, c.Logger = o.Backends, o.Keep, o.Logger
		return lab.New(c)
	}},
	{"kind", func(o Options) (clusters.Provider, error) {
		k := o.Kind
		k.Backends, k.Keep, k.Logger = o.Backends, o.Keep, o.Logger
		k.ClientNodes = max(k.ClientNodes, o.LoadClients)
		return kind.New(k)
	}},
	{"existing", func(o Options) (clusters.Provider, error) {
		e := o.Existing
		e.Backends, e.Keep, e.Logger = o.Backends, o.Keep, o.Logger
		return existing.New(e)
	}},
}

// Names are the providers' names.
func Names() []string {
	names := make([]string, len(factories))
	for i, f := range factories {
		names[i] = f.name
	}
	return names
}

// Known reports whether name is a provider.
func Known(name string) bool { return slices.Contains(Names(), name) }

// List is the providers' names for a message: "lab, kind or existing".
func List() string {
	n := Names()
	if len(n) < 2 {
		return strings.Join(n, "")
	}
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}

// New builds the provider called name. It creates nothing yet.
func New(name string, o Options) (clusters.Provider, error) {
	for _, f := range factories {
		if f.name == name {
			return f.new(o)
		}
	}
	return nil, fmt.Errorf("unknown provider %q: want %s", name, List())
}
