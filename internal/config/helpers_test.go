package config

import (
	"io"

	"go.yaml.in/yaml/v3"
)

func newEncoder(w io.Writer) *yaml.Encoder { return yaml.NewEncoder(w) }
