// Package cli holds the databridge binary's subcommands, one file each.
package cli

import (
	"fmt"
	"io"
	"sort"

	"github.com/databridge-io/databridge/internal/version"
)

// command is one subcommand of the databridge binary.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands is filled by each subcommand's file in an init function.
var commands = map[string]command{
	"version": {
		summary: "print the build's version",
		run: func(_ []string, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, version.String())
			return 0
		},
	},
}

// register adds a subcommand; each subcommand's file calls it from init.
func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("databridge: command registered twice: " + name)
	}
	commands[name] = c
}

// Run runs the subcommand named by args[0] and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
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
