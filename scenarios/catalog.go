package scenarios

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
)

//go:embed catalog/*.yaml
var catalogFS embed.FS

// CatalogNames lists the embedded scenarios.
func CatalogNames() []string {
	entries, err := catalogFS.ReadDir("catalog")
	if err != nil {
		panic(err) // embedded at build time
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// CatalogSource returns the YAML of a catalog scenario as shipped.
func CatalogSource(name string) ([]byte, bool) {
	data, err := catalogFS.ReadFile(path.Join("catalog", name+".yaml"))
	return data, err == nil
}

// FromCatalog returns the named catalog scenario, defaulted and validated.
// ok is false when no catalog scenario has that name.
func FromCatalog(name string) (s *Scenario, ok bool, err error) {
	data, found := CatalogSource(name)
	if !found {
		return nil, false, nil
	}
	s, err = Parse(data)
	if err != nil {
		return nil, true, fmt.Errorf("catalog scenario %s: %w", name, err)
	}
	return s, true, nil
}
