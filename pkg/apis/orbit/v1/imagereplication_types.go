package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplicationPhase is where an ImageReplication stands.
// +kubebuilder:validation:Enum=Pending;Replicating;Complete;Failed
type ReplicationPhase string

// Replication phases: Pending → Replicating → Complete | Failed.
const (
	PhasePending     ReplicationPhase = "Pending"
	PhaseReplicating ReplicationPhase = "Replicating"
	PhaseComplete    ReplicationPhase = "Complete"
	PhaseFailed      ReplicationPhase = "Failed"
)

// ImageReplication asks for one image to be copied into the private mirror.
//
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=ir;imagerepl
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Attempt",type=integer,JSONPath=`.status.attempt`
// +kubebuilder:printcolumn:name="Build",type=string,JSONPath=`.status.buildId`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source`
// +kubebuilder:printcolumn:name="Destination",type=string,JSONPath=`.spec.destination`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageReplication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImageReplicationSpec   `json:"spec"`
	Status ImageReplicationStatus `json:"status,omitempty"`
}

// ImageReplicationSpec names the image to copy and where it goes.
type ImageReplicationSpec struct {
	// Source is the image reference as a Pod asked for it.
	// +kubebuilder:validation:MinLength=1
	Source string `json:"source"`
	// Destination is the image reference in the mirror.
	// +kubebuilder:validation:MinLength=1
	Destination string `json:"destination"`
}

// ImageReplicationStatus is written by the image-replicator; a restart resumes from it.
type ImageReplicationStatus struct {
	// +optional
	Phase ReplicationPhase `json:"phase,omitempty"`
	// Attempt counts replication attempts started so far.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempt int32 `json:"attempt,omitempty"`
	// BuildID is the CodeBuild build of the current or last attempt.
	// +optional
	BuildID string `json:"buildId,omitempty"`
	// Message says why the phase is what it is.
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// ImageReplicationList is a list of ImageReplications.
//
// +kubebuilder:object:root=true
type ImageReplicationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageReplication `json:"items"`
}
