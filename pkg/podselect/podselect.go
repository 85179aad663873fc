// Package podselect compiles and checks the selectors of a PodSetting: the podSelector that
// chooses the Pods of a team and the containerSelector that chooses containers inside them.
//
// The pod-modifier compiles every PodSetting once, when its cache changes, and evaluates the
// compiled form on each admitted Pod; the podsettings-watcher uses Validate to report broken
// selectors in the PodSetting's status before any Pod meets them. Both read the same rules
// from here, so a PodSetting the watcher calls Valid is one the pod-modifier can apply.
package podselect

import (
	"errors"
	"strings"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// Part names the selector of a PodSetting an Error is about. The pod-modifier warns about a
// bad podSelector for every Pod of the team but about a bad containerSelector only for the
// Pods its podSelector matches, so callers must tell them apart.
type Part string

// The two selectors of a PodSetting, spelled as the fields of its spec.
const (
	PartPod       Part = "podSelector"
	PartContainer Part = "containerSelector"
)

// Error is a selector that cannot be compiled. Problems holds one line per problem found,
// each starting with the field path inside the selector (e.g. "matchExpressions[0].operator").
type Error struct {
	Part     Part
	Problems []string
}

func (e *Error) Error() string {
	return "invalid " + string(e.Part) + ": " + strings.Join(e.Problems, "; ")
}

// IsPodSelectorError reports whether err (or an error it wraps) is an invalid podSelector.
func IsPodSelectorError(err error) bool { return isPart(err, PartPod) }

// IsContainerSelectorError reports whether err (or an error it wraps) is an invalid
// containerSelector.
func IsContainerSelectorError(err error) bool { return isPart(err, PartContainer) }

func isPart(err error, p Part) bool {
	// errors.As stops at the first *Error, which may be the other part of a joined error,
	// so walk joined errors ourselves.
	switch e := err.(type) {
	case nil:
		return false
	case *Error:
		return e.Part == p
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if isPart(inner, p) {
				return true
			}
		}
		return false
	default:
		return isPart(errors.Unwrap(err), p)
	}
}

// Compiled is a PodSetting's selectors in the form that is evaluated per Pod. It is immutable
// and safe for concurrent use.
//
// Exactly one of Pod and PodErr is non-nil, and likewise Container and ContainerErr. Both
// selectors are always compiled, so a PodSetting with a bad podSelector still reports the
// state of its containerSelector.
type Compiled struct {
	Pod          *PodSelector
	PodErr       error
	Container    *ContainerSelector
	ContainerErr error
}

// Compile compiles the selectors of ps. It never fails as a whole: problems are in PodErr and
// ContainerErr (each an *Error), so a caller can skip the PodSetting and say why.
func Compile(ps *orbitv1.PodSetting) *Compiled {
	c := &Compiled{}
	if ps == nil {
		// Nothing to select with: an empty selector matches nothing.
		c.Pod, c.Container = &PodSelector{}, &ContainerSelector{}
		return c
	}
	pod, err := CompilePodSelector(ps.Spec.PodSelector)
	if err != nil {
		c.PodErr = err
	} else {
		c.Pod = pod
	}
	ctr, err := CompileContainerSelector(ps.Spec.ContainerSelector)
	if err != nil {
		c.ContainerErr = err
	} else {
		c.Container = ctr
	}
	return c
}

// Err joins PodErr and ContainerErr; nil when both selectors compiled.
func (c *Compiled) Err() error { return errors.Join(c.PodErr, c.ContainerErr) }

// MatchesPod reports whether the podSelector compiled and matches the given Pod labels.
func (c *Compiled) MatchesPod(labels map[string]string) bool {
	return c.Pod != nil && c.Pod.Matches(labels)
}

// Validate lists every selector problem of ps, one human-readable line each, prefixed with the
// field path in the spec (e.g. `podSelector.matchExpressions[1].operator: ...`). It is empty
// when both selectors compile. The podsettings-watcher writes these into the PodSetting's
// status.
func Validate(ps *orbitv1.PodSetting) []string {
	c := Compile(ps)
	var out []string
	for _, err := range []error{c.PodErr, c.ContainerErr} {
		var se *Error
		if !errors.As(err, &se) {
			continue
		}
		for _, p := range se.Problems {
			out = append(out, string(se.Part)+"."+p)
		}
	}
	return out
}
