// Package poddefaults holds the pure logic of the poddefaults-watcher (SPEC §3.4): which
// PodDefaults are a team's, which namespaces are its users', the copies that should exist
// (Desired), and what to create, update and delete given the PodDefaults that do (Plan).
// Nothing here does I/O; the watcher package reads informer caches, calls these functions and
// writes the result.
package poddefaults

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Labels and annotation of SPEC §2 and §3.4.
const (
	LabelSpace = "orbit/space"
	LabelTeam  = "orbit/team"
	SpaceTeam  = "team"
	SpaceUser  = "user"
	// AnnotationSource names the team PodDefault a copy was made from, as "<namespace>/<name>".
	// It is what tells a copy from a PodDefault a user made in their own namespace.
	AnnotationSource = "orbit/source-poddefault"
)

// PodDefault resource of Kubeflow.
var (
	GVR = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1alpha1", Resource: "poddefaults"}
	GVK = schema.GroupVersionKind{Group: "kubeflow.org", Version: "v1alpha1", Kind: "PodDefault"}
)

// TeamOf returns the team of a team PodDefault (labelled orbit/space=team with a non-empty
// orbit/team), or "".
func TeamOf(pd *unstructured.Unstructured) string {
	l := pd.GetLabels()
	if l[LabelSpace] != SpaceTeam {
		return ""
	}
	return l[LabelTeam]
}

// IsCopy reports whether pd is a copy made by the watcher: it carries the source annotation
// and is not itself a team PodDefault.
func IsCopy(pd *unstructured.Unstructured) bool {
	if TeamOf(pd) != "" {
		return false
	}
	_, ok := pd.GetAnnotations()[AnnotationSource]
	return ok
}

// CopyTeam is the team a copy says it belongs to: its orbit/team label, or, when someone
// removed that, the namespace of its source (team namespaces are named after their team).
func CopyTeam(pd *unstructured.Unstructured) string {
	if t := pd.GetLabels()[LabelTeam]; t != "" {
		return t
	}
	src := pd.GetAnnotations()[AnnotationSource]
	ns, _, ok := strings.Cut(src, "/")
	if !ok {
		return ""
	}
	return ns
}

// UserTeam returns the team of a user namespace (labelled orbit/space=user with a non-empty
// orbit/team), or "". A Terminating user namespace still has its team: it is the team's to
// clean up, though it gets no copies.
func UserTeam(ns *corev1.Namespace) string {
	if ns.Labels[LabelSpace] != SpaceUser {
		return ""
	}
	return ns.Labels[LabelTeam]
}

// Terminating reports whether a namespace is going away.
func Terminating(ns *corev1.Namespace) bool {
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
}

// SourceKey is the value of the source annotation for a team PodDefault.
func SourceKey(pd *unstructured.Unstructured) string { return pd.GetNamespace() + "/" + pd.GetName() }

// Copy is one PodDefault the watcher wants in a user namespace.
type Copy struct {
	Namespace string
	Name      string
	Team      string
	// Source is the team PodDefault, "<namespace>/<name>".
	Source string
	// Spec is the source's spec (nil when the source has none). Shared with the source's
	// cached object: never modify it; Object deep-copies it.
	Spec map[string]any
}

// Key is "<namespace>/<name>", the cache key of the copy.
func (c Copy) Key() string { return c.Namespace + "/" + c.Name }

// Object is the PodDefault to create for c.
func (c Copy) Object() *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(GVK)
	u.SetNamespace(c.Namespace)
	u.SetName(c.Name)
	u.SetLabels(map[string]string{LabelSpace: SpaceUser, LabelTeam: c.Team})
	u.SetAnnotations(map[string]string{AnnotationSource: c.Source})
	if c.Spec != nil {
		u.Object["spec"] = runtime.DeepCopyJSON(c.Spec)
	}
	return u
}

// Matches reports whether pd already is c: same spec, the two labels and the source
// annotation (other labels and annotations may be there too).
func (c Copy) Matches(pd *unstructured.Unstructured) bool {
	l, a := pd.GetLabels(), pd.GetAnnotations()
	if l[LabelSpace] != SpaceUser || l[LabelTeam] != c.Team || a[AnnotationSource] != c.Source {
		return false
	}
	spec, _, _ := unstructured.NestedFieldNoCopy(pd.Object, "spec")
	return equality.Semantic.DeepEqual(normalise(spec), normalise(c.Spec))
}

// normalise treats a missing spec and an empty one alike.
func normalise(v any) any {
	switch m := v.(type) {
	case nil:
		return nil
	case map[string]any:
		if len(m) == 0 {
			return nil
		}
	}
	return v
}

// ApplyTo returns pd changed to be c: spec replaced, labels and annotation set, everything else
// (other labels and annotations, owner references) kept.
func (c Copy) ApplyTo(pd *unstructured.Unstructured) *unstructured.Unstructured {
	out := pd.DeepCopy()
	l := out.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[LabelSpace], l[LabelTeam] = SpaceUser, c.Team
	out.SetLabels(l)
	a := out.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationSource] = c.Source
	out.SetAnnotations(a)
	if c.Spec == nil {
		delete(out.Object, "spec")
	} else {
		out.Object["spec"] = runtime.DeepCopyJSON(c.Spec)
	}
	return out
}

// Sources returns the team's PodDefaults that are copied: labelled orbit/space=team and
// orbit/team=<team>, not being deleted, one per name. When two namespaces hold a team
// PodDefault of the same name for the team, the one in the team's own namespace wins, else the
// first namespace in order; the others are returned as shadowed so the caller can say so.
func Sources(team string, podDefaults []*unstructured.Unstructured) (sources, shadowed []*unstructured.Unstructured) {
	var candidates []*unstructured.Unstructured
	for _, pd := range podDefaults {
		if team == "" || TeamOf(pd) != team || pd.GetDeletionTimestamp() != nil {
			continue
		}
		candidates = append(candidates, pd)
	}
	slices.SortFunc(candidates, func(a, b *unstructured.Unstructured) int {
		if c := cmp.Compare(a.GetName(), b.GetName()); c != 0 {
			return c
		}
		if a.GetNamespace() == team || b.GetNamespace() == team {
			if a.GetNamespace() == team {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.GetNamespace(), b.GetNamespace())
	})
	for i, pd := range candidates {
		if i > 0 && candidates[i-1].GetName() == pd.GetName() {
			shadowed = append(shadowed, pd)
			continue
		}
		sources = append(sources, pd)
	}
	return sources, shadowed
}

// Users returns the names of the team's user namespaces that get copies: labelled
// orbit/space=user and orbit/team=<team>, not Terminating; sorted.
func Users(team string, namespaces []*corev1.Namespace) []string {
	var out []string
	for _, ns := range namespaces {
		if team == "" || UserTeam(ns) != team || Terminating(ns) {
			continue
		}
		out = append(out, ns.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Desired is the copies team should have: every team PodDefault (see Sources) in every user
// namespace of the team (see Users), sorted by namespace then name. podDefaults and namespaces
// may hold anything; Desired picks the team's own. A source is not copied into its own
// namespace.
func Desired(team string, podDefaults []*unstructured.Unstructured, namespaces []*corev1.Namespace) []Copy {
	sources, _ := Sources(team, podDefaults)
	users := Users(team, namespaces)
	out := make([]Copy, 0, len(sources)*len(users))
	for _, user := range users {
		for _, src := range sources {
			if src.GetNamespace() == user {
				continue
			}
			spec, _, _ := unstructured.NestedFieldNoCopy(src.Object, "spec")
			m, _ := spec.(map[string]any)
			out = append(out, Copy{Namespace: user, Name: src.GetName(), Team: team, Source: SourceKey(src), Spec: m})
		}
	}
	return out
}

// Update is a copy that exists but differs: Object is Existing changed to be Copy.
type Update struct {
	Copy     Copy
	Existing *unstructured.Unstructured
	Object   *unstructured.Unstructured
}

// Conflict is a desired copy whose name a PodDefault the watcher did not make already takes.
type Conflict struct {
	Copy     Copy
	Existing *unstructured.Unstructured
}

// Changes are the writes that bring a team's copies to the desired state.
type Changes struct {
	Create    []Copy
	Update    []Update
	Delete    []*unstructured.Unstructured
	Conflicts []Conflict
}

// Empty reports whether nothing needs writing (conflicts are only reported).
func (c Changes) Empty() bool { return len(c.Create) == 0 && len(c.Update) == 0 && len(c.Delete) == 0 }

// Plan compares the desired copies with what exists. existing looks a PodDefault up by
// namespace and name (nil when absent); owned are the team's current copies (PodDefaults for
// which IsCopy holds and CopyTeam is the team; anything else in it is ignored). A desired copy
// whose place is taken by a PodDefault that is not a copy is a conflict and is never
// overwritten; a copy of another team in that place is taken over (its namespace moved to
// this team). Objects being deleted are left to finish.
func Plan(team string, desired []Copy, existing func(namespace, name string) *unstructured.Unstructured, owned []*unstructured.Unstructured) Changes {
	var ch Changes
	want := make(map[string]struct{}, len(desired))
	for _, c := range desired {
		want[c.Key()] = struct{}{}
		cur := existing(c.Namespace, c.Name)
		switch {
		case cur == nil:
			ch.Create = append(ch.Create, c)
		case cur.GetDeletionTimestamp() != nil:
			// Its deletion event brings the team back to the queue.
		case !IsCopy(cur):
			ch.Conflicts = append(ch.Conflicts, Conflict{Copy: c, Existing: cur})
		case !c.Matches(cur):
			ch.Update = append(ch.Update, Update{Copy: c, Existing: cur, Object: c.ApplyTo(cur)})
		}
	}
	seen := map[string]struct{}{}
	for _, pd := range owned {
		key := pd.GetNamespace() + "/" + pd.GetName()
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		if !IsCopy(pd) || CopyTeam(pd) != team || pd.GetDeletionTimestamp() != nil {
			continue
		}
		if _, ok := want[key]; !ok {
			ch.Delete = append(ch.Delete, pd)
		}
	}
	slices.SortFunc(ch.Delete, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return ch
}
