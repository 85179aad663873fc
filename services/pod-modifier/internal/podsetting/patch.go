package podsetting

import (
	"encoding/json"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// Patch returns the JSON Patch that turns the Pod as submitted (originalJSON, the raw object
// of the AdmissionRequest) into mutated. The library computes paths from the two documents,
// so keys with "/" or "~" (e.g. nodeSelector "kubernetes.io/os") are escaped per RFC 6901.
//
// Diffing against the raw original rather than a re-encoding of the decoded Pod keeps the
// patch valid for documents that omit fields Go always encodes (a container without
// "resources" gets one added whole, not a child of a missing parent). Call it only when
// Result.Changed: an unchanged Pod can still differ from a hand-written original in such
// empty fields, giving a harmless but pointless patch.
func Patch(originalJSON []byte, mutated *corev1.Pod) ([]jsonpatch.Operation, error) {
	modified, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encode mutated pod %s/%s: %w", mutated.Namespace, mutated.Name, err)
	}
	ops, err := diffJSON(originalJSON, modified)
	if err != nil {
		return nil, fmt.Errorf("diff pod %s/%s against the submitted object: %w", mutated.Namespace, mutated.Name, err)
	}
	return ops, nil
}

// diffJSON is jsonpatch.CreatePatch on the reduced documents (see reduce), falling back to the
// whole documents when they cannot be reduced, so the library reports malformed input.
func diffJSON(a, b []byte) ([]jsonpatch.Operation, error) {
	ra, rb, err := reduce(a, b)
	if err != nil {
		ra, rb = a, b
	}
	return jsonpatch.CreatePatch(ra, rb)
}
