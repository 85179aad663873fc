package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/valuesdoc"
)

const (
	tableStart = "<!-- values-table:start (generated from values.yaml: UPDATE_GOLDEN=1 go test ./chart -run TestReadmeValuesTable in e2e/) -->"
	tableEnd   = "<!-- values-table:end -->"
)

// TestReadmeValuesTable: the README's values table is the one values.yaml documents.
// UPDATE_GOLDEN=1 rewrites it.
func TestReadmeValuesTable(t *testing.T) {
	dir := repo.ChartDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := valuesdoc.Rows(raw)
	if err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	table := valuesdoc.Markdown(rows)
	readmePath := filepath.Join(dir, "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), tableStart)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the markers %q and %q", tableStart, tableEnd)
	}
	want := before + tableStart + "\n" + table + tableEnd + after
	if want == string(readme) {
		return
	}
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(readmePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the values table of %s", readmePath)
		return
	}
	t.Errorf("README.md values table is stale: run UPDATE_GOLDEN=1 go test ./chart -run TestReadmeValuesTable in e2e/")
}

// TestValuesDocumentedAndInSchema: every documented value has a place in values.schema.json
// (whose additionalProperties:false then rejects anything else).
func TestValuesDocumentedAndInSchema(t *testing.T) {
	dir := repo.ChartDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := valuesdoc.Rows(raw)
	if err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	schema := readJSON(t, filepath.Join(dir, "values.schema.json"))
	for _, r := range rows {
		if !inSchema(schema, schema, strings.Split(r.Key, ".")) {
			t.Errorf("value %s is not in values.schema.json", r.Key)
		}
		if strings.TrimSpace(r.Description) == "" {
			t.Errorf("value %s has an empty description", r.Key)
		}
	}
}
