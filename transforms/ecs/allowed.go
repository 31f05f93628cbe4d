package ecs

import (
	_ "embed"
	"fmt"
	"slices"

	yaml "go.yaml.in/yaml/v3"
)

//go:embed ecs_allowed_values.yaml
var allowedValuesYAML []byte

// allowedValues is the shape of ecs_allowed_values.yaml.
type allowedValues struct {
	ECSVersion string              `yaml:"ecs_version"`
	Kind       []string            `yaml:"event.kind"`
	Outcome    []string            `yaml:"event.outcome"`
	Category   map[string][]string `yaml:"event.category"`
	Type       []string            `yaml:"event.type"`
}

var (
	ecsAllowed          = mustLoadAllowed()
	allowedCategories   = setOf(mapKeys(ecsAllowed.Category))
	allowedCategoryList = sorted(mapKeys(ecsAllowed.Category))
	allowedTypes        = setOf(ecsAllowed.Type)
	allowedTypeList     = sorted(ecsAllowed.Type)
	allowedOutcomes     = setOf(ecsAllowed.Outcome)
	allowedKinds        = setOf(ecsAllowed.Kind)
)

func mustLoadAllowed() allowedValues {
	var a allowedValues
	if err := yaml.Unmarshal(allowedValuesYAML, &a); err != nil {
		panic(fmt.Sprintf("ecs: embedded ecs_allowed_values.yaml: %v", err))
	}
	if a.ECSVersion != Version {
		panic(fmt.Sprintf("ecs: ecs_allowed_values.yaml is for ECS %s, the transform targets %s", a.ECSVersion, Version))
	}
	return a
}

func mapKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}

func sorted(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return out
}
