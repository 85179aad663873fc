package patch

import (
	"testing"
)

type widget struct {
	Name   string            `json:"name"`
	Size   int               `json:"size,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Parts  []part            `json:"parts,omitempty"`
}

type part struct {
	ID    string `json:"id"`
	Color string `json:"color,omitempty"`
}

// Create on any type: changes become operations, fields the type does not know stay, a known
// field the mutated object no longer has is removed.
func TestCreate(t *testing.T) {
	original := []byte(`{"name":"w","size":3,"future":{"a":1},"labels":{"x/y":"1"},"parts":[{"id":"p1","color":"red","futureP":true}]}`)
	mutated := widget{Name: "w", Labels: map[string]string{"x/y": "2", "z": "3"}, Parts: []part{{ID: "p1"}, {ID: "p2"}}}
	ops, err := Create(original, &mutated)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := applyOps(original, ops)
	if !ok {
		t.Fatalf("patch %v does not apply", ops)
	}
	want := `{"name":"w","future":{"a":1},"labels":{"x/y":"2","z":"3"},"parts":[{"id":"p1","futureP":true},{"id":"p2"}]}`
	if !sameJSON(got, []byte(want)) {
		t.Errorf("patch %v gives\n%s\nwant\n%s", ops, got, want)
	}
}

func TestCreateReportsUnencodable(t *testing.T) {
	if _, err := Create([]byte(`{}`), map[string]any{"f": func() {}}); err == nil {
		t.Error("Create encoded a func")
	}
}
