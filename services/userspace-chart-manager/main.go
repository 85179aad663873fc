// Command userspace-chart-manager installs each user's Helm charts into their team namespace
// when the user's namespace appears, and uninstalls them when it goes (SPEC §3.1).
package main

import "github.com/orbit-workbench/orbit-controller/pkg/cli"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(command(version)) }
