// Command podsettings-watcher keeps a Kubeflow PodDefault for every team PodSetting and a
// Valid condition on every PodSetting (SPEC §3.3).
package main

import "github.com/orbit-workbench/orbit-controller/pkg/cli"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(command(version)) }
