// Package valuesdoc turns the chart's values.yaml into the values table of its README. A value
// is documented by a comment line starting with "# --" right above its key (continued by the
// comment lines that follow); an optional "(type)" first word overrides the type read from the
// default. Mappings without such a comment are sections and are walked into.
package valuesdoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Row is one documented value.
type Row struct {
	Key         string
	Type        string
	Default     string // Markdown: the default as JSON in backticks, or a pointer to values.yaml
	Description string
}

// maxDefault is the longest default shown inline; longer ones point at values.yaml.
const maxDefault = 80

var typeOverride = regexp.MustCompile(`^\(([a-z]+)\)\s*`)

// Rows reads the documented values of a values.yaml, in file order. Every leaf (a scalar, a
// list, an empty mapping) must be documented.
func Rows(values []byte) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, fmt.Errorf("parse values: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("values: want a mapping at the top")
	}
	var rows []Row
	if err := walk("", doc.Content[0], &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

func walk(prefix string, m *yaml.Node, rows *[]Row) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		desc, documented := description(k.HeadComment)
		if !documented && v.Kind == yaml.MappingNode && len(v.Content) > 0 {
			if err := walk(key, v, rows); err != nil {
				return err
			}
			continue
		}
		if !documented {
			return fmt.Errorf("%s: no \"# --\" comment documents it", key)
		}
		row := Row{Key: key, Description: desc}
		if m := typeOverride.FindStringSubmatch(desc); m != nil {
			row.Type, row.Description = m[1], desc[len(m[0]):]
		}
		var val any
		if err := v.Decode(&val); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if row.Type == "" {
			row.Type = typeOf(val)
		}
		raw, err := json.Marshal(val)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		row.Default = "`" + string(raw) + "`"
		if len(raw) > maxDefault {
			row.Default = "see values.yaml"
		}
		*rows = append(*rows, row)
	}
	return nil
}

// description returns the text of the "# --" comment block, if any.
func description(comment string) (string, bool) {
	lines := strings.Split(comment, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# --") {
			start = i
		}
	}
	if start < 0 {
		return "", false
	}
	parts := []string{strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[start]), "# --"))}
	for _, l := range lines[start+1:] {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") {
			break
		}
		parts = append(parts, strings.TrimSpace(strings.TrimPrefix(l, "#")))
	}
	return strings.Join(parts, " "), true
}

func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int, int64, uint64:
		return "int"
	case float64:
		return "float"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Markdown renders rows as a Markdown table.
func Markdown(rows []Row) string {
	var b bytes.Buffer
	b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Key, r.Type, cell(r.Default), cell(r.Description))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
