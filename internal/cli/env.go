package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// envName is the environment variable that sets a flag: DATABRIDGE_ and the
// flag's name in upper case with - as _ (--spool-dir: DATABRIDGE_SPOOL_DIR).
func envName(flagName string) string {
	return "DATABRIDGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs that the command line left unset from its
// environment variable, if that is set: in a pod, config comes from the
// environment; a flag given on the command line wins.
func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q (for --%s): %v", envName(f.Name), v, f.Name, e)
			}
		}
	})
	return err
}
