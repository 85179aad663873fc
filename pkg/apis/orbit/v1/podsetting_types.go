package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Selector operators accepted in PodSelector.MatchExpressions. DoesNotExist is Kubernetes'
// spelling of NotExists and is accepted as an alias.
const (
	OperatorIn           = "In"
	OperatorNotIn        = "NotIn"
	OperatorExists       = "Exists"
	OperatorNotExists    = "NotExists"
	OperatorDoesNotExist = "DoesNotExist"
)

// ConditionValid is the PodSetting condition the podsettings-watcher maintains.
const ConditionValid = "Valid"

// PodSetting describes modifications applied to the Pods of a team that match its selector.
//
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=ps;podsetting
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].reason`,priority=1
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.desc`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PodSetting struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PodSettingSpec   `json:"spec,omitempty"`
	Status PodSettingStatus `json:"status,omitempty"`
}

// PodSettingSpec is what a PodSetting selects and what it changes.
type PodSettingSpec struct {
	// Desc is shown to users as the description of the PodDefault made from this PodSetting.
	// +optional
	Desc string `json:"desc,omitempty"`

	// PodSelector chooses the Pods of the team this PodSetting applies to. An empty selector
	// matches nothing.
	// +optional
	PodSelector PodSelector `json:"podSelector,omitempty"`

	// ContainerSelector chooses the containers (and init containers) that the container-level
	// fields modify. Without one no container is touched.
	// +optional
	ContainerSelector *ContainerSelector `json:"containerSelector,omitempty"`

	// InjectUserContext adds USERNAME and USEREMAIL to the chosen containers.
	// +optional
	InjectUserContext bool `json:"injectUserContext,omitempty"`

	// NotebookApp, when set, adds NB_PREFIX=/notebook/<namespace>/<notebook-name>/<notebookApp>.
	// +optional
	NotebookApp string `json:"notebookApp,omitempty"`

	// Pod level.

	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`
	// +optional
	Volumes []corev1.Volume `json:"volumes,omitempty"`
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// Container level.

	// +optional
	Image string `json:"image,omitempty"`
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// +optional
	Command []string `json:"command,omitempty"`
	// +optional
	Args []string `json:"args,omitempty"`
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
	// +optional
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`
	// +optional
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`
	// +optional
	Lifecycle *corev1.Lifecycle `json:"lifecycle,omitempty"`
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// PodSelector selects Pods by label. Operators are not restricted by the schema so that a
// PodSetting with an unknown operator can still be stored and reported as not Valid.
type PodSelector struct {
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// +optional
	MatchExpressions []SelectorRequirement `json:"matchExpressions,omitempty"`
}

// SelectorRequirement is one label expression: In, NotIn, Exists, NotExists (or DoesNotExist).
type SelectorRequirement struct {
	Key string `json:"key"`
	// Operator is one of In, NotIn, Exists, NotExists, DoesNotExist.
	Operator string `json:"operator"`
	// +optional
	Values []string `json:"values,omitempty"`
}

// ContainerSelector chooses containers by name: a regex anchored at the start of the name
// ("*" means every container), or a JSONPath over the Pod whose results are container names
// (both "metadata.labels.app" and "{.metadata.labels.app}" forms).
type ContainerSelector struct {
	// +optional
	Regex string `json:"regex,omitempty"`
	// +optional
	JSONPath string `json:"jsonpath,omitempty"`
}

// PodSettingStatus is written by the podsettings-watcher.
type PodSettingStatus struct {
	// ObservedGeneration is the generation the conditions were computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions hold Valid, with the reason a PodSetting cannot be applied.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// SelectorErrors lists every selector problem found, one line each.
	// +optional
	SelectorErrors []string `json:"selectorErrors,omitempty"`
}

// PodSettingList is a list of PodSettings.
//
// +kubebuilder:object:root=true
type PodSettingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodSetting `json:"items"`
}
