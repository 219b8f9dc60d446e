package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a Go duration string in the config file: "500ms", "30s",
// "1m30s". Zero means "use the default".
type Duration time.Duration

func (v *Duration) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur < 0 {
		d.errorf(n, "%s: want a duration such as 30s or 1m30s, got %q", path, s)
		return
	}
	*v = Duration(dur)
}

// D returns the value as a time.Duration.
func (v Duration) D() time.Duration { return time.Duration(v) }

// Count is a number of things, a plain integer, not negative. Zero means
// "use the default".
type Count int

func (v *Count) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	c, err := ParseCount(s)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return
	}
	*v = c
}

// ParseCount parses a whole number, 0 or more.
func ParseCount(s string) (Count, error) {
	c, err := strconv.Atoi(s)
	if err != nil || c < 0 {
		return 0, fmt.Errorf("want a whole number, 0 or more, got %q", s)
	}
	return Count(c), nil
}

// ByteSize is a size in bytes: a plain integer or a number with a unit,
// "64KiB", "1MB", "10MiB" (KB/MB/GB are powers of 1000, KiB/MiB/GiB of
// 1024, as in Caddy). Zero means "use the default".
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

func (v *ByteSize) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	b, err := ParseByteSize(s)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return
	}
	*v = ByteSize(b)
}

// ParseByteSize parses "1048576", "1MiB", "64KB" and the like.
func ParseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a size such as 1048576, 64KiB or 10MB, got %q", s)
	}
	return n * mult, nil
}

// StringList is one string or a list of strings:
// `upstream: http://a` and `upstream: [http://a, http://b]` both work.
type StringList []string

func (v *StringList) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	if n.Kind == yaml.SequenceNode {
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.nodes[p] = item
			if s, ok := d.scalar(item, p); ok {
				out = append(out, s)
			}
		}
		*v = out
		return
	}
	if s, ok := d.scalar(n, path); ok {
		*v = StringList{s}
	}
}

// TLSPair is one certificate and its private key, both PEM files.
type TLSPair struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// TLSList is one pair (`tls: {cert: a.crt, key: a.key}`) or a list of pairs
// for an endpoint that serves several names; the certificate is chosen by
// SNI.
type TLSList []TLSPair

func (v *TLSList) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	var list []TLSPair
	switch n.Kind {
	case yaml.MappingNode:
		list = make([]TLSPair, 1)
		d.decodeStruct(n, reflectValue(&list[0]), path)
	case yaml.SequenceNode:
		list = make([]TLSPair, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.nodes[p] = item
			d.decodeStruct(item, reflectValue(&list[i]), p)
		}
	default:
		d.errorf(n, "%s: want {cert: FILE, key: FILE} or a list of them, got %s", path, describe(n))
		return
	}
	*v = list
}
