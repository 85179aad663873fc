package patch

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestShapeKnowsTheJSONFieldsOfTheTypes(t *testing.T) {
	pod := shapeOf(reflect.TypeFor[corev1.Pod]())
	walk := func(s *shape, keys ...string) (bool, *shape) {
		known := true
		for _, k := range keys {
			if k == "[]" {
				s = s.element()
				continue
			}
			known, s = s.member([]byte(`"` + k + `"`))
			if !known {
				return false, nil
			}
		}
		return known, s
	}
	tests := []struct {
		path  []string
		known bool
	}{
		{[]string{"kind"}, true},             // TypeMeta, embedded inline
		{[]string{"metadata", "name"}, true}, // ObjectMeta
		{[]string{"metadata", "labels", "any/key"}, true},
		{[]string{"metadata", "futureMeta"}, false},
		{[]string{"spec", "volumes", "[]", "emptyDir"}, true}, // VolumeSource, embedded inline
		{[]string{"spec", "volumes", "[]", "futureSource"}, false},
		{[]string{"spec", "containers", "[]", "livenessProbe", "httpGet"}, true}, // ProbeHandler inline
		{[]string{"spec", "containers", "[]", "Name"}, true},                     // decoders ignore case
		{[]string{"spec", "containers", "[]", "env", "[]", "valueFrom"}, true},
		{[]string{"spec", "containers", "[]", "resources", "limits", "cpu"}, true},
		{[]string{"spec", "containers", "[]", "resources", "limits", "cpu", "anything"}, true}, // a Quantity: its own encoding
		{[]string{"spec", "futureSpec"}, false},
		{[]string{"status", "conditions", "[]", "lastTransitionTime"}, true},
	}
	for _, tt := range tests {
		if got, _ := walk(pod, tt.path...); got != tt.known {
			t.Errorf("%v known = %v, want %v", tt.path, got, tt.known)
		}
	}
}
