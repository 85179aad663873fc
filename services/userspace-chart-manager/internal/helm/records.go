package helm

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// How Helm's Secrets driver labels the Secret holding one revision of a release: release
// labels given at install are copied onto it beside these, which is what lets the service
// watch its releases' metadata instead of decoding records.
const (
	recordOwnerLabel   = "owner"
	recordOwner        = "helm"
	recordNameLabel    = "name"
	recordStatusLabel  = "status"
	recordVersionLabel = "version"
)

// RecordSelector selects the release record Secrets that carry the given release labels.
func RecordSelector(releaseLabels map[string]string) string {
	set := labels.Set{recordOwnerLabel: recordOwner}
	for k, v := range releaseLabels {
		set[k] = v
	}
	return labels.SelectorFromSet(set).String()
}

// Record is what a release record Secret's metadata says.
type Record struct {
	Namespace string
	Release   string
	Status    string
	// Revision is the release revision the record holds (0 when unreadable).
	Revision int
	Labels   map[string]string
}

// RecordFromSecret reads a release record from a Secret's metadata; ok is false for a Secret
// that is not one.
func RecordFromSecret(namespace, name string, secretLabels map[string]string) (Record, bool) {
	if secretLabels[recordOwnerLabel] != recordOwner || secretLabels[recordNameLabel] == "" ||
		!strings.HasPrefix(name, "sh.helm.release.v1.") {
		return Record{}, false
	}
	rev, _ := strconv.Atoi(secretLabels[recordVersionLabel])
	return Record{
		Revision:  rev,
		Namespace: namespace,
		Release:   secretLabels[recordNameLabel],
		Status:    secretLabels[recordStatusLabel],
		Labels:    secretLabels,
	}, true
}
