package patch

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// Why this file exists: a Pod from an API server newer than this binary's k8s.io/api carries
// fields our types do not know. Decoding drops them, so the mutated Pod's encoding lacks them,
// and a plain diff against the submitted document would remove them from every Pod the webhook
// touches. The diff therefore removes a member only where the Go type has a field of that
// name (our encoding left it out on purpose, e.g. an env var's valueFrom replaced by a
// value); a member the type does not know is left as it is.

// shape is what the diff needs to know of a Go type's JSON form: nil for a value whose form it
// cannot tell (a custom encoding such as resource.Quantity, an interface, raw JSON), which
// counts every member as known.
type shape struct {
	kind   reflect.Kind // Struct, Map (a JSON object), Slice (a JSON array)
	elem   *shape       // of a map's values or a slice's elements
	fields map[string]*shape
	names  []string // the field names, for the decoder's case-insensitive match
}

var shapes sync.Map // reflect.Type → *shape

// shapeOf returns the shape of t's JSON encoding.
func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return nil
	}
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, s)
	return s
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func buildShape(t reflect.Type, seen map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := seen[t]; ok { // recursive types (JSONSchemaProps and the like)
		return s
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		s := &shape{kind: reflect.Map}
		seen[t] = s
		s.elem = buildShape(t.Elem(), seen)
		return s
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // []byte is a base64 string
		}
		s := &shape{kind: reflect.Slice}
		seen[t] = s
		s.elem = buildShape(t.Elem(), seen)
		return s
	case reflect.Struct:
		s := &shape{kind: reflect.Struct, fields: map[string]*shape{}}
		seen[t] = s
		addFields(s, t, seen)
		return s
	}
	return nil
}

// addFields records t's JSON fields in s, with those of embedded structs promoted as
// encoding/json does.
func addFields(s *shape, t reflect.Type, seen map[reflect.Type]*shape) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(s, ft, seen)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := s.fields[name]; !dup {
			s.fields[name] = buildShape(f.Type, seen)
			s.names = append(s.names, name)
		}
	}
}

// member returns whether the object shape s has a member named key (the JSON key with its
// quotes, as written; never escaped, see objectMembers) and that member's shape.
func (s *shape) member(key []byte) (known bool, child *shape) {
	if s == nil {
		return true, nil
	}
	name := key[1 : len(key)-1]
	switch s.kind {
	case reflect.Map:
		return true, s.elem
	case reflect.Struct:
		if c, ok := s.fields[string(name)]; ok {
			return true, c
		}
		lookup := string(name)
		for _, n := range s.names { // the decoders match field names case-insensitively
			if strings.EqualFold(n, lookup) {
				return true, s.fields[n]
			}
		}
		return false, nil
	}
	return true, nil
}

// element returns the shape of an array shape's elements.
func (s *shape) element() *shape {
	if s == nil || s.kind != reflect.Slice {
		return nil
	}
	return s.elem
}
