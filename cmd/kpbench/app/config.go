package app

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// bindConfig fills every flag of cmd that was not given on the command line
// from KPBENCH_<FLAG> or, failing that, the config file. Commands then read
// their plain flag variables; nothing else consults viper. A key of the
// config file that is no flag of any command is an error, as an unknown
// field of a scenario file is. sources records, for each flag it set, where
// the value came from (KPBENCH_X=value or the file and key), so that errors
// name what the user wrote.
func bindConfig(cmd *cobra.Command, configFile string, sources map[string]string) error {
	v := viper.New()
	v.SetEnvPrefix("KPBENCH")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if configFile == "" {
		configFile = os.Getenv("KPBENCH_CONFIG")
	}
	if configFile == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			def := dir + "/kpbench/config.yaml"
			if _, err := os.Stat(def); err == nil {
				configFile = def
			}
		}
	}
	if configFile != "" {
		v.SetConfigFile(configFile)
		if err := v.ReadInConfig(); err != nil {
			return badInput(fmt.Errorf("reading config file %s: %w", configFile, err))
		}
		if err := checkConfigKeys(configFile, v.AllKeys(), cmd.Root()); err != nil {
			return badInput(err)
		}
	}
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" || f.Name == "version" {
			return
		}
		if !v.IsSet(f.Name) {
			return
		}
		source := fmt.Sprintf("config file %s: %s", configFile, f.Name)
		env := envName(f.Name)
		if val, ok := os.LookupEnv(env); ok {
			source = env + "=" + val
		}
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(v.GetStringSlice(f.Name))
		} else {
			err = f.Value.Set(v.GetString(f.Name))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not a valid --%s: %w", source, f.Name, err))
			return
		}
		if sources != nil {
			sources[f.Name] = source
		}
	})
	if len(errs) > 0 {
		return badInput(errors.Join(errs...))
	}
	return nil
}

// envName is the environment variable of a flag: KPBENCH_ and the flag's
// name, upper case, dashes as underscores.
func envName(flag string) string {
	return "KPBENCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkConfigKeys reports every key of the config file that is no flag of
// any command under root, with the closest flag name as a suggestion.
func checkConfigKeys(file string, keys []string, root *cobra.Command) error {
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	var errs []error
	sort.Strings(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		msg := fmt.Sprintf("config file %s: unknown key %q", file, k)
		if s := closest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (keys are flag names without the dashes, e.g. threshold: 5%)"
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// closest returns the known name nearest to k by edit distance, if it is
// near enough to be a typo (at most a third of k's length, at least 1).
func closest(k string, known map[string]bool) string {
	best, bestD := "", max(len(k)/3, 1)+1
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names) // ties go to the first name, whatever map order
	for _, n := range names {
		if d := editDistance(k, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// explainSources prefixes a bad-input error that names a flag set from the
// environment or the config file with where its value came from: the
// command's own validation speaks of --threshold, the user wrote
// KPBENCH_THRESHOLD=abc.
func explainSources(err error, sources map[string]string) error {
	if err == nil || len(sources) == 0 {
		return err
	}
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != ExitUsage || exit.Err == nil {
		return err
	}
	msg := exit.Err.Error()
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	var prefix []string
	for _, n := range names {
		if strings.HasPrefix(msg, sources[n]) {
			continue // bindConfig named it already
		}
		if regexp.MustCompile(`--` + regexp.QuoteMeta(n) + `([^\w-]|$)`).MatchString(msg) {
			prefix = append(prefix, sources[n])
		}
	}
	if len(prefix) == 0 {
		return err
	}
	return &ExitError{Code: exit.Code, Err: fmt.Errorf("%s: %w", strings.Join(prefix, ", "), exit.Err)}
}
