package chart

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func readJSON(t testing.TB, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// inSchema reports whether the path of property names is declared in schema node (following
// local "#/definitions/…" references).
func inSchema(root, node map[string]any, path []string) bool {
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			break
		}
		def, _ := root["definitions"].(map[string]any)[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		if def == nil {
			return false
		}
		node = def
	}
	if len(path) == 0 {
		return true
	}
	props, _ := node["properties"].(map[string]any)
	next, ok := props[path[0]].(map[string]any)
	if !ok {
		return false
	}
	return inSchema(root, next, path[1:])
}
