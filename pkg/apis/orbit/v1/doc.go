// Package v1 holds the orbit.aws/v1 API: PodSetting and ImageReplication.
//
// The CRD manifests in charts/orbit-controller/crds are generated from these types with
// controller-gen (make generate); they are the single source of truth for tests and the chart.
//
// +kubebuilder:object:generate=true
// +groupName=orbit.aws
package v1
