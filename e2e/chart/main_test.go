// Package chart tests the orbit-controller Helm chart through the Helm SDK: it lints, renders
// with every combination that matters (wired consistently: Services to Pods, webhooks to
// Services and certificates, bindings to ServiceAccounts), installs into a real control
// plane, upgrades and uninstalls, holds each service to least-privilege RBAC, passes the
// binaries' own flag parsing, and keeps the README's values table current.
package chart

import (
	"testing"

	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

var env *testenv.Env

// TestMain starts one control plane for the package; no kube-controller-manager is needed
// (nothing here waits for garbage collection or namespace deletion).
func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{NoControllerManager: true}, &env)
}
