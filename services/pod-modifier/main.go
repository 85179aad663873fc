// Command pod-modifier is the podsettings pod-modifier: a mutating admission webhook that
// applies the PodSettings of a Pod's team to every new Pod (SPEC §3.2).
package main

import "github.com/orbit-workbench/orbit-controller/pkg/cli"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(command(version)) }
