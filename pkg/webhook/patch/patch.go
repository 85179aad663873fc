// Package patch creates the JSON Patch a mutating webhook answers with: from the object as
// submitted (the raw JSON of the AdmissionRequest) to the mutated Go object. The operations
// and their paths come from gomodules.xyz/jsonpatch, never hand-built, so keys such as
// "kubernetes.io/os" are escaped per RFC 6901; this package makes that fast (reduce.go) and
// keeps the fields of the submitted object that the Go type does not know (shape.go).
package patch

import (
	"fmt"
	"reflect"

	gojson "github.com/goccy/go-json"
	"gomodules.xyz/jsonpatch/v2"
)

// Create returns the operations that turn original into mutated's JSON encoding.
//
// Diffing against the submitted document rather than a re-encoding of the decoded object
// keeps the patch valid for documents that omit fields Go always encodes (a container without
// "resources" gets one added whole, not a child of a missing parent); members of original
// that mutated's type does not know (fields of a newer API server) are left alone. Call it
// only when something changed: an unchanged object can still differ from a hand-written
// original in such empty fields, giving a harmless but pointless patch.
func Create(original []byte, mutated any) ([]jsonpatch.Operation, error) {
	// goccy/go-json writes what encoding/json writes (sorted map keys, the types' own
	// MarshalJSON) in a third of the time; the closer the bytes are to the API server's
	// encoding, the more of the documents reduce drops.
	modified, err := gojson.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encode the mutated object: %w", err)
	}
	return diff(original, modified, shapeOf(reflect.TypeOf(mutated)))
}

// diff is jsonpatch.CreatePatch on the skeletons of the two documents (see reduce) with
// the modified document's values put back, falling back to the whole documents when they
// cannot be reduced (malformed, or keys duplicated or escaped, which no encoder writes), so
// the library reports malformed input.
func diff(a, b []byte, root *shape) ([]jsonpatch.Operation, error) {
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
