package podsetting

import (
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/orbit-workbench/orbit-controller/pkg/webhook/patch"
)

// Patch returns the JSON Patch that turns the Pod as submitted (originalJSON, the raw object
// of the AdmissionRequest) into mutated; see patch.Create. Call it only when Result.Changed.
func Patch(originalJSON []byte, mutated *corev1.Pod) ([]jsonpatch.Operation, error) {
	ops, err := patch.Create(originalJSON, mutated)
	if err != nil {
		return nil, fmt.Errorf("diff pod %s/%s against the submitted object: %w", mutated.Namespace, mutated.Name, err)
	}
	return ops, nil
}
