// Command poddefaults-watcher copies every team PodDefault into every user namespace of the
// team, and removes the copies when the team PodDefault or the user goes (SPEC §3.4).
package main

import "github.com/orbit-workbench/orbit-controller/pkg/cli"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(command(version)) }
