// Command image-replicator is the pod-image-replicator: it watches ImageReplications and
// copies each image into the private mirror, through AWS CodeBuild or registry to registry
// (SPEC §3.6); with --inventory it replicates a list of images once and exits.
package main

import "github.com/orbit-workbench/orbit-controller/pkg/cli"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(command(version)) }
