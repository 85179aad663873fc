package handler

import (
	"encoding/json"
	"errors"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
)

// podDoc is a submitted Pod split only as far as the rewrite needs: the top-level fields,
// metadata, and the container lists, every other value kept as the raw JSON it arrived as.
// Nothing this build does not know is lost, and no time goes into decoding what is never
// looked at (env, volumes, probes…).
type podDoc struct {
	top  map[string]json.RawMessage
	meta map[string]json.RawMessage // nil: no metadata object
	// lists holds the elements of spec.initContainers and spec.containers, in that order.
	lists [len(containerLists)][]element
	// present says which lists the spec has as arrays.
	present [len(containerLists)]bool
}

// element is one entry of a container list.
type element struct {
	raw         json.RawMessage
	fields      map[string]json.RawMessage // nil: not an object
	name, image string
}

// parsePod splits raw. It fails on anything that is not a JSON object.
func parsePod(raw []byte) (*podDoc, error) {
	if len(raw) == 0 {
		return nil, errors.New("no object in the request")
	}
	d := &podDoc{}
	if err := json.Unmarshal(raw, &d.top); err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	if d.top == nil {
		return nil, errors.New("decode pod: object is null")
	}
	if m, ok := d.top["metadata"]; ok {
		_ = json.Unmarshal(m, &d.meta) // not an object: handled as none
	}
	var spec map[string]json.RawMessage
	if s, ok := d.top["spec"]; ok {
		_ = json.Unmarshal(s, &spec)
	}
	for i, list := range containerLists {
		rawList, ok := spec[list]
		if !ok {
			continue
		}
		// One pass: every element an object (a Pod as the API server sends it). Anything else
		// falls back to element by element, keeping the non-objects as they are.
		var objects []map[string]json.RawMessage
		if err := json.Unmarshal(rawList, &objects); err == nil && objects != nil {
			d.present[i] = true
			d.lists[i] = make([]element, len(objects))
			for j, fields := range objects {
				d.lists[i][j] = newElement(nil, fields)
			}
			continue
		}
		var items []json.RawMessage
		if err := json.Unmarshal(rawList, &items); err != nil || items == nil {
			continue
		}
		d.present[i] = true
		d.lists[i] = make([]element, len(items))
		for j, item := range items {
			var fields map[string]json.RawMessage
			if json.Unmarshal(item, &fields) != nil {
				fields = nil
			}
			d.lists[i][j] = newElement(item, fields)
		}
	}
	return d, nil
}

// newElement describes one list entry: fields when it is an object (nil for null or any
// other value, whose raw JSON is then kept).
func newElement(raw json.RawMessage, fields map[string]json.RawMessage) element {
	e := element{raw: raw, fields: fields}
	if fields != nil {
		e.name = stringField(fields, "name")
		e.image = stringField(fields, "image")
	}
	return e
}

func stringField(fields map[string]json.RawMessage, key string) string {
	var s string
	if raw, ok := fields[key]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// metaString is a string field of metadata ("" when absent).
func (d *podDoc) metaString(key string) string {
	return stringField(d.meta, key)
}

// images maps "<list>/<container name>" to the image of every container.
func (d *podDoc) images() map[string]string {
	out := map[string]string{}
	for i, list := range containerLists {
		for _, e := range d.lists[i] {
			out[list+"/"+e.name] = e.image
		}
	}
	return out
}

// rewrite is a new image for one element.
type rewrite struct {
	list, index int
	image       string
}

// patch is the JSON Patch that sets the rewritten images and adds annotations to the Pod. The
// patch library diffs two reduced documents — the annotations and the images of the changed
// lists, before and after — laid out exactly like the Pod, so every path it produces exists in
// the Pod as submitted, and no other field can differ.
func (d *podDoc) patch(rewrites []rewrite, annotations map[string]string) ([]jsonpatch.Operation, error) {
	before, after := map[string]any{}, map[string]any{}

	var listsBefore, listsAfter [len(containerLists)][]any
	for _, r := range rewrites {
		if listsBefore[r.list] == nil {
			listsBefore[r.list], listsAfter[r.list] = reduceList(d.lists[r.list])
		}
		listsAfter[r.list][r.index].(map[string]any)["image"] = r.image
	}
	specBefore, specAfter := map[string]any{}, map[string]any{}
	for i, list := range containerLists {
		if listsBefore[i] != nil {
			specBefore[list], specAfter[list] = listsBefore[i], listsAfter[i]
		}
	}
	if len(specBefore) > 0 {
		before["spec"], after["spec"] = specBefore, specAfter
	}

	merged := map[string]any{}
	metaAfter := map[string]any{"annotations": merged}
	switch {
	case d.meta != nil:
		metaBefore := map[string]any{}
		if existing, ok := d.meta["annotations"]; ok {
			metaBefore["annotations"] = existing
			var fields map[string]json.RawMessage
			if json.Unmarshal(existing, &fields) == nil {
				for k, v := range fields {
					merged[k] = v
				}
			}
		}
		before["metadata"] = metaBefore
	default:
		if m, ok := d.top["metadata"]; ok {
			before["metadata"] = m // null or not an object: replaced
		}
	}
	for k, v := range annotations {
		merged[k] = v
	}
	after["metadata"] = metaAfter

	a, err := json.Marshal(before)
	if err != nil {
		return nil, fmt.Errorf("encode pod: %w", err)
	}
	b, err := json.Marshal(after)
	if err != nil {
		return nil, fmt.Errorf("encode pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("create patch: %w", err)
	}
	return ops, nil
}

// reduceList keeps, of every element, only its image (objects) or its raw value (anything
// else), so indices stay those of the Pod.
func reduceList(items []element) (before, after []any) {
	before, after = make([]any, len(items)), make([]any, len(items))
	for i, e := range items {
		if e.fields == nil {
			raw := e.raw
			if raw == nil {
				raw = json.RawMessage("null")
			}
			before[i], after[i] = raw, raw
			continue
		}
		b, a := map[string]any{}, map[string]any{}
		if img, ok := e.fields["image"]; ok {
			b["image"], a["image"] = img, img
		}
		before[i], after[i] = b, a
	}
	return before, after
}
