// Command databridge sells real-time market data on subscription tiers: one
// binary holds the Kubernetes operator, the data plane, the feeds and the
// reports, chosen by subcommand.
package main

import (
	"os"

	"github.com/databridge-io/databridge/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
