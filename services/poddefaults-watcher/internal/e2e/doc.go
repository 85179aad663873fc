// Package e2e holds the end-to-end tests that run both watchers of the shared Pod
// (podsettings-watcher and poddefaults-watcher, SPEC §3.3 and §3.4) against the real control
// plane: PodSetting → team PodDefault → copies in user namespaces, garbage collection, and
// convergence after a restart. It has no code of its own.
package e2e
