// Package podsettings holds the pure logic of the podsettings-watcher (SPEC §3.3): which
// PodSettings it handles, the PodDefault each one should have, what to do given the PodDefault
// that exists, and the Valid condition written to the PodSetting's status. Nothing here does
// I/O; the watcher package reads caches, calls these functions and writes the result.
package podsettings

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// Labels of SPEC §2 and §3.3.
const (
	LabelSpace          = "orbit/space"
	LabelTeam           = "orbit/team"
	LabelDisableWatcher = "orbit/disable-watcher"
	SpaceTeam           = "team"
	// SelectorLabelPrefix + PodSetting name is the Pod label the PodDefault selects on.
	SelectorLabelPrefix = "orbit/"
)

// Reasons of the Valid condition.
const (
	ReasonValid                    = "Valid"
	ReasonInvalidPodSelector       = "InvalidPodSelector"
	ReasonInvalidContainerSelector = "InvalidContainerSelector"
	ReasonInvalidSelectors         = "InvalidSelectors"
	// MessageValid is the condition message of a PodSetting whose selectors compile.
	MessageValid = "podSelector and containerSelector compile"
	// maxMessage is the API's limit on a condition message.
	maxMessage = 32768
)

// Resources the watcher reads and writes.
var (
	PodSettingGVR = orbitv1.SchemeGroupVersion.WithResource(orbitv1.PodSettingsResource)
	PodDefaultGVR = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1alpha1", Resource: "poddefaults"}
	PodDefaultGVK = schema.GroupVersionKind{Group: "kubeflow.org", Version: "v1alpha1", Kind: "PodDefault"}
	PodSettingGVK = orbitv1.SchemeGroupVersion.WithKind("PodSetting")
)

// FromUnstructured decodes a PodSetting read through the dynamic client.
func FromUnstructured(u *unstructured.Unstructured) (*orbitv1.PodSetting, error) {
	ps := &orbitv1.PodSetting{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// Handled reports whether the watcher keeps a PodDefault for ps: labelled orbit/space=team and
// not labelled orbit/disable-watcher (whatever its value).
func Handled(ps *orbitv1.PodSetting) bool {
	if ps.Labels[LabelSpace] != SpaceTeam {
		return false
	}
	_, disabled := ps.Labels[LabelDisableWatcher]
	return !disabled
}

// OwnerReference is the reference a PodDefault made for ps carries: Kubernetes'
// garbage collector deletes the PodDefault with the PodSetting.
func OwnerReference(ps *orbitv1.PodSetting) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         PodSettingGVK.GroupVersion().String(),
		Kind:               PodSettingGVK.Kind,
		Name:               ps.Name,
		UID:                ps.UID,
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

// OwnedBy reports whether pd carries an ownerReference to the PodSetting with uid: that is
// how the watcher recognises the PodDefaults it made (a PodDefault of the same name made by
// someone else, or for an earlier PodSetting of the same name, is not ours).
func OwnedBy(pd *unstructured.Unstructured, uid types.UID) bool {
	if uid == "" {
		return false
	}
	for _, ref := range pd.GetOwnerReferences() {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

// Selector is the PodDefault selector for the PodSetting called name: Pods labelled
// orbit/<name> (with any value; Kubeflow's notebook UI sets it to "").
func Selector(name string) map[string]any {
	return map[string]any{"matchLabels": map[string]any{SelectorLabelPrefix + name: ""}}
}

// DesiredPodDefault is the PodDefault ps should have: same name and namespace, labelled as a
// team PodDefault of the namespace's team, owned by ps, spec {selector, desc}.
func DesiredPodDefault(ps *orbitv1.PodSetting) *unstructured.Unstructured {
	pd := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector": Selector(ps.Name),
			"desc":     ps.Spec.Desc,
		},
	}}
	pd.SetGroupVersionKind(PodDefaultGVK)
	pd.SetNamespace(ps.Namespace)
	pd.SetName(ps.Name)
	pd.SetLabels(map[string]string{LabelSpace: SpaceTeam, LabelTeam: ps.Namespace})
	pd.SetOwnerReferences([]metav1.OwnerReference{OwnerReference(ps)})
	return pd
}

// Merge returns existing with the fields the watcher owns set as in desired: the two labels,
// its ownerReference, spec.selector and spec.desc. Everything else (other labels, other
// owners, other spec fields someone added) is kept. changed says whether anything differs.
func Merge(existing, desired *unstructured.Unstructured) (merged *unstructured.Unstructured, changed bool) {
	merged = existing.DeepCopy()

	labels := merged.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range desired.GetLabels() {
		if cur, ok := labels[k]; !ok || cur != v {
			labels[k] = v
			changed = true
		}
	}
	if changed {
		merged.SetLabels(labels)
	}

	want := desired.GetOwnerReferences()
	refs := merged.GetOwnerReferences()
	refsChanged := false
	for _, w := range want {
		found := false
		for i := range refs {
			if refs[i].UID != w.UID {
				continue
			}
			found = true
			if !equality.Semantic.DeepEqual(refs[i], w) {
				refs[i] = w
				refsChanged = true
			}
		}
		if !found {
			refs = append(refs, w)
			refsChanged = true
		}
	}
	if refsChanged {
		merged.SetOwnerReferences(refs)
		changed = true
	}

	for _, field := range []string{"selector", "desc"} {
		want, _, _ := unstructured.NestedFieldNoCopy(desired.Object, "spec", field)
		cur, found, _ := unstructured.NestedFieldNoCopy(merged.Object, "spec", field)
		if found && equality.Semantic.DeepEqual(cur, want) {
			continue
		}
		if err := unstructured.SetNestedField(merged.Object, runtime.DeepCopyJSONValue(want), "spec", field); err != nil {
			// spec is not an object: replace it with the desired one.
			merged.Object["spec"] = runtime.DeepCopyJSONValue(desired.Object["spec"])
		}
		changed = true
	}
	return merged, changed
}

// ActionKind says what the watcher must do about a PodSetting's PodDefault.
type ActionKind int

// The actions Plan can choose.
const (
	// None: the PodDefault is as it should be (or is nobody's business of ours).
	None ActionKind = iota
	// Create the PodDefault in Action.Object.
	Create
	// Update the existing PodDefault to Action.Object.
	Update
	// Delete the PodDefault in Action.Object: it is ours and its PodSetting no longer wants one.
	Delete
	// Conflict: a PodDefault of that name exists and is not ours; it is left alone.
	Conflict
)

func (k ActionKind) String() string {
	switch k {
	case None:
		return "none"
	case Create:
		return "create"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Conflict:
		return "conflict"
	}
	return "unknown"
}

// Action is Plan's verdict. Object is the PodDefault to create, the merged PodDefault to
// update to, the PodDefault to delete, or the conflicting PodDefault.
type Action struct {
	Kind   ActionKind
	Object *unstructured.Unstructured
	// Why explains None and Conflict for the debug log.
	Why string
}

// Plan decides what to do about ps's PodDefault given the PodDefault of the same name and
// namespace that exists (nil when there is none).
func Plan(ps *orbitv1.PodSetting, existing *unstructured.Unstructured) Action {
	if ps.DeletionTimestamp != nil {
		// The garbage collector removes our PodDefault; recreating it now would race it.
		return Action{Kind: None, Why: "podsetting is being deleted"}
	}
	if !Handled(ps) {
		if existing != nil && existing.GetDeletionTimestamp() == nil && OwnedBy(existing, ps.UID) {
			return Action{Kind: Delete, Object: existing}
		}
		return Action{Kind: None, Why: "podsetting is not handled by the watcher"}
	}
	desired := DesiredPodDefault(ps)
	if existing == nil {
		return Action{Kind: Create, Object: desired}
	}
	if existing.GetDeletionTimestamp() != nil {
		// Its deletion event brings the PodSetting back to the queue.
		return Action{Kind: None, Why: "existing poddefault is being deleted"}
	}
	if !OwnedBy(existing, ps.UID) {
		return Action{Kind: Conflict, Object: existing, Why: "a poddefault of that name exists and is not owned by this podsetting"}
	}
	merged, changed := Merge(existing, desired)
	if !changed {
		return Action{Kind: None, Why: "poddefault is up to date"}
	}
	return Action{Kind: Update, Object: merged}
}

// ValidCondition is the Valid condition for a PodSetting with the given selector problems
// (podselect.Validate's output, each line starting with the selector it is about).
func ValidCondition(problems []string, generation int64, now time.Time) metav1.Condition {
	c := metav1.Condition{
		Type:               orbitv1.ConditionValid,
		ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now),
	}
	if len(problems) == 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, ReasonValid, MessageValid
		return c
	}
	var pod, container bool
	for _, p := range problems {
		switch {
		case strings.HasPrefix(p, "podSelector"):
			pod = true
		case strings.HasPrefix(p, "containerSelector"):
			container = true
		default:
			pod, container = true, true
		}
	}
	c.Status = metav1.ConditionFalse
	switch {
	case pod && container:
		c.Reason = ReasonInvalidSelectors
	case pod:
		c.Reason = ReasonInvalidPodSelector
	default:
		c.Reason = ReasonInvalidContainerSelector
	}
	c.Message = strings.Join(problems, "; ")
	if len(c.Message) > maxMessage {
		c.Message = c.Message[:maxMessage-3] + "..."
	}
	return c
}

// DesiredStatus is ps's status with the Valid condition, observedGeneration and
// selectorErrors for the given problems. changed is false when ps's status already says all
// that, in which case nothing must be written (a status write is an update event; writing
// unconditionally would loop). The transition time moves only when the condition's status does.
func DesiredStatus(ps *orbitv1.PodSetting, problems []string, now time.Time) (status orbitv1.PodSettingStatus, changed bool) {
	status = *ps.Status.DeepCopy()
	changed = meta.SetStatusCondition(&status.Conditions, ValidCondition(problems, ps.Generation, now))
	if status.ObservedGeneration != ps.Generation {
		status.ObservedGeneration = ps.Generation
		changed = true
	}
	if !equalStrings(status.SelectorErrors, problems) {
		status.SelectorErrors = nil
		if len(problems) > 0 {
			status.SelectorErrors = append([]string(nil), problems...)
		}
		changed = true
	}
	return status, changed
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
