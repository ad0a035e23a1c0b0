// Command databridge sells real-time market data on subscription tiers: one
// binary holds the Kubernetes operator, the data plane, the feeds and the
// reports, chosen by subcommand.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/databridge-io/databridge/internal/version"
)

// command is one subcommand of the databridge binary.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"version": {
		summary: "print the build's version",
		run: func(_ []string, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, version.String())
			return 0
		},
	},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "databridge: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: databridge <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-12s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'databridge <command> -h' for a command's flags.")
}
