// Command image-updater is the pod-image-updater: a mutating admission webhook that rewrites
// every container image to the private mirror and asks for its replication (SPEC §3.5).
package main

import "github.com/orbit-workbench/orbit-controller/pkg/cli"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(command(version)) }
