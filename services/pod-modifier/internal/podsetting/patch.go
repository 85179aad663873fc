package podsetting

import (
	"fmt"
	"reflect"

	gojson "github.com/goccy/go-json"

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
	// goccy/go-json writes what encoding/json writes (sorted map keys, the types' own
	// MarshalJSON; held equal by a test) in a third of the time.
	modified, err := gojson.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encode mutated pod %s/%s: %w", mutated.Namespace, mutated.Name, err)
	}
	ops, err := diffJSON(originalJSON, modified, shapeOf(reflect.TypeFor[corev1.Pod]()))
	if err != nil {
		return nil, fmt.Errorf("diff pod %s/%s against the submitted object: %w", mutated.Namespace, mutated.Name, err)
	}
	return ops, nil
}

// diffJSON is jsonpatch.CreatePatch on the skeletons of the two documents (see reduce) with
// the modified document's values put back, falling back to the whole documents when they
// cannot be reduced (malformed, or keys duplicated or escaped, which no encoder writes), so
// the library reports malformed input.
func diffJSON(a, b []byte, root *shape) ([]jsonpatch.Operation, error) {
	r, err := reduce(a, b, root)
	if err != nil {
		return jsonpatch.CreatePatch(a, b)
	}
	ops, err := jsonpatch.CreatePatch(r.a, r.b)
	if err != nil {
		return nil, err
	}
	if err := r.restore(ops); err != nil {
		// Cannot happen for skeletons reduce wrote; the whole documents are still right.
		return jsonpatch.CreatePatch(a, b)
	}
	return ops, nil
}
