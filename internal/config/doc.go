// Package config is the schema of sluice's config file (`sluice serve -c
// sluice.yaml`) and its loader. Decoding is strict and positional: every
// unknown key, wrong type or invalid value is reported as FILE:LINE:COL with
// the field's path, all errors at once, so that a broken file on reload can
// be logged in one clear message while the old config keeps serving.
// ${ENV_VAR} and ${ENV_VAR:-default} are expanded in scalar values (not in
// inline traffic policies, whose ${expr} is ngrok's interpolation). The
// package holds no behaviour beyond parsing, checking and normalising:
// turning a Config into running listeners is cmd/sluice's wiring.
package config
