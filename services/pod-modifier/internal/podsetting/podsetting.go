// Package podsetting is the pure heart of the pod-modifier: given a Pod, its Namespace and the
// team's PodSettings it computes the mutated Pod, the PodSettings applied and the warnings
// (SPEC §3.2). No I/O: the webhook, the offline preview, the tests and the benchmarks all call
// the same code.
package podsetting

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/podselect"
)

// Names the modifier reads and writes on Pods and Namespaces.
const (
	// AppliedAnnotation lists, comma-separated, the PodSettings applied to a Pod. A PodSetting
	// named there is not applied again, which makes reinvocation idempotent.
	AppliedAnnotation = "orbit/applied-podsettings"

	// Namespace labels and annotation (SPEC §2) and the Pod label NB_PREFIX is built from.
	LabelTeam         = "orbit/team"
	LabelUser         = "orbit/user"
	AnnotationOwner   = "owner"
	LabelNotebookName = "notebook-name"

	// Variables injected into the chosen containers.
	EnvUserSpace      = "AWS_ORBIT_USER_SPACE"
	EnvImage          = "AWS_ORBIT_IMAGE"
	EnvNotebookPrefix = "NB_PREFIX"
	EnvUserName       = "USERNAME"
	EnvUserEmail      = "USEREMAIL"
)

const notebookPrefixStart = "/notebook/"

// Result is the outcome of applying PodSettings to a Pod.
type Result struct {
	// Pod is the Pod with the PodSettings applied. From Apply it is a deep copy: the input
	// is never modified and Pod shares no memory with it. From ApplyInPlace it is the input
	// itself. Either way it shares no memory with the PodSettings.
	Pod *corev1.Pod
	// Applied names the PodSettings applied by this call, in the order applied (those
	// already recorded in AppliedAnnotation are not repeated here).
	Applied []string
	// Warnings explain the PodSettings skipped because a selector is invalid; meant for the
	// AdmissionResponse's warnings, so each names the PodSetting with its namespace.
	Warnings []string
}

// Changed reports whether Pod differs from the input: only then is a patch needed.
func (r Result) Changed() bool { return len(r.Applied) > 0 }

// Set is a team's PodSettings with their selectors compiled, sorted by name. Build it once
// when the cache changes and share it: it is immutable and safe for concurrent use. The
// PodSettings it was built from must not be modified afterwards (informer cache objects never
// are).
type Set struct {
	items []item
}

type item struct {
	ps  *orbitv1.PodSetting
	sel *podselect.Compiled
	// Precomputed so a request with a broken PodSetting allocates no message.
	podWarning, containerWarning string
}

// NewSet compiles settings (nil entries are ignored) and sorts them by name, the order in
// which they are applied.
func NewSet(settings []*orbitv1.PodSetting) *Set {
	s := &Set{items: make([]item, 0, len(settings))}
	for _, ps := range settings {
		if ps == nil {
			continue
		}
		it := item{ps: ps, sel: podselect.Compile(ps)}
		if it.sel.PodErr != nil {
			it.podWarning = skipWarning(ps, it.sel.PodErr)
		}
		if it.sel.ContainerErr != nil {
			it.containerWarning = skipWarning(ps, it.sel.ContainerErr)
		}
		s.items = append(s.items, it)
	}
	slices.SortStableFunc(s.items, func(a, b item) int { return cmp.Compare(a.ps.Name, b.ps.Name) })
	return s
}

func skipWarning(ps *orbitv1.PodSetting, err error) string {
	return "podsetting " + ps.Namespace + "/" + ps.Name + " skipped: " + err.Error()
}

// Len is the number of PodSettings in the set.
func (s *Set) Len() int { return len(s.items) }

// Apply applies settings to pod; see Set.Apply. It compiles the selectors on every call, so a
// webhook should keep a Set instead.
func Apply(pod *corev1.Pod, ns *corev1.Namespace, settings []*orbitv1.PodSetting) Result {
	return NewSet(settings).Apply(pod, ns)
}

// plan is one PodSetting chosen for a Pod with the containers it touches, both decided on
// the Pod as submitted.
type plan struct {
	ps  *orbitv1.PodSetting
	sel podselect.Selection
}

// Apply applies the matching PodSettings of the set to a copy of pod (SPEC §3.2). ns is the
// Pod's Namespace: its name is the user space, its labels orbit/user and orbit/team and its
// annotation owner give USERNAME and USEREMAIL. A nil ns leaves those empty and takes the
// namespace name from the Pod. NB_PREFIX uses the notebook-name label as submitted, else the
// Pod's name.
//
// Every selector is evaluated against the Pod as submitted, then the matches are applied in
// name order, a later one winning. A PodSetting with an invalid podSelector is skipped with a
// warning for every Pod; one with an invalid containerSelector only for Pods its podSelector
// matches. A PodSetting already named in AppliedAnnotation is skipped silently.
func (s *Set) Apply(pod *corev1.Pod, ns *corev1.Namespace) Result {
	return s.apply(pod, ns, true)
}

// ApplyInPlace is Apply modifying pod itself, which Result.Pod then is: for a caller that
// owns the Pod, like the webhook that has just decoded it from the request, it saves a deep
// copy (about half the cost of Apply). Selectors still see the Pod as submitted, because
// every match is decided before anything changes; values from PodSettings are still copied.
func (s *Set) ApplyInPlace(pod *corev1.Pod, ns *corev1.Namespace) Result {
	return s.apply(pod, ns, false)
}

func (s *Set) apply(pod *corev1.Pod, ns *corev1.Namespace, copyPod bool) Result {
	var res Result
	already := pod.Annotations[AppliedAnnotation]

	var plans []plan
	for i := range s.items {
		it := &s.items[i]
		if it.sel.PodErr != nil {
			res.Warnings = append(res.Warnings, it.podWarning)
			continue
		}
		if !it.sel.Pod.Matches(pod.Labels) {
			continue
		}
		if it.sel.ContainerErr != nil {
			res.Warnings = append(res.Warnings, it.containerWarning)
			continue
		}
		// Duplicate names (a caller mixing namespaces) are applied once, the first winning.
		if listed(already, it.ps.Name) || slices.ContainsFunc(plans, func(p plan) bool { return p.ps.Name == it.ps.Name }) {
			continue
		}
		sel, err := it.sel.Container.Select(pod)
		if err != nil {
			res.Warnings = append(res.Warnings, skipWarning(it.ps, err))
			continue
		}
		plans = append(plans, plan{ps: it.ps, sel: sel})
	}

	out := pod
	if copyPod {
		out = pod.DeepCopy()
	}
	res.Pod = out
	if len(plans) == 0 {
		return res
	}

	// Read before the first change: NB_PREFIX uses the labels as submitted.
	env := newEnvContext(pod, ns)
	res.Applied = make([]string, 0, len(plans))
	for _, p := range plans {
		applyPod(out, p.ps)
		for _, i := range p.sel.InitContainers {
			applyContainer(&out.Spec.InitContainers[i], p.ps, env)
		}
		for _, i := range p.sel.Containers {
			applyContainer(&out.Spec.Containers[i], p.ps, env)
		}
		res.Applied = append(res.Applied, p.ps.Name)
	}
	// Written last so that a PodSetting's own annotations cannot drop the record.
	setAnnotation(out, AppliedAnnotation, appendApplied(already, res.Applied))
	return res
}

// listed reports whether name is an entry of the comma-separated list (spaces tolerated).
func listed(list, name string) bool {
	for list != "" {
		var entry string
		entry, list, _ = strings.Cut(list, ",")
		if strings.TrimSpace(entry) == name {
			return true
		}
	}
	return false
}

// appendApplied returns the normalised list: previous entries (trimmed, empties and
// duplicates dropped) followed by the newly applied names.
func appendApplied(list string, names []string) string {
	var b strings.Builder
	seen := make([]string, 0, 8)
	add := func(n string) {
		if n == "" || slices.Contains(seen, n) {
			return
		}
		if len(seen) > 0 {
			b.WriteByte(',')
		}
		seen = append(seen, n)
		b.WriteString(n)
	}
	for list != "" {
		var entry string
		entry, list, _ = strings.Cut(list, ",")
		add(strings.TrimSpace(entry))
	}
	for _, n := range names {
		add(n)
	}
	return b.String()
}

func setAnnotation(pod *corev1.Pod, key, value string) {
	if pod.Annotations == nil {
		pod.Annotations = make(map[string]string, 1)
	}
	pod.Annotations[key] = value
}

// envContext holds the per-Pod values of the injected variables, computed once per request.
type envContext struct {
	userSpace string
	podName   string // notebook-name label, else the Pod's name, for NB_PREFIX
	userName  string
	userEmail string
}

func newEnvContext(pod *corev1.Pod, ns *corev1.Namespace) envContext {
	var c envContext
	c.userSpace = pod.Namespace
	if ns != nil {
		// The Pod in an AdmissionReview may not carry its namespace yet; the Namespace does.
		c.userSpace = ns.Name
		c.userName = ns.Labels[LabelUser]
		if c.userName == "" {
			c.userName = ns.Labels[LabelTeam]
		}
		c.userEmail = ns.Annotations[AnnotationOwner]
	}
	c.podName = pod.Labels[LabelNotebookName]
	if c.podName == "" {
		c.podName = pod.Name
	}
	return c
}
