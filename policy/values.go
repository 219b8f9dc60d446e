package policy

// CEL value helpers: the case-insensitive header map and conversions
// between CEL values and plain Go values.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"reflect"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// headerMap is a CEL map(string, list(string)) over an http.Header whose
// lookups ignore case, so req.headers['x-api-key'], req.headers['X-Api-Key']
// and 'x-api-key' in req.headers all work. Lookups go straight to the
// http.Header (no copy); iteration, size and equality use a lower-cased
// copy built on first use, since ngrok exposes lower-case names.
type headerMap struct {
	headerView
	lower traits.Mapper
}

func newHeaderMap(v headerView) *headerMap { return &headerMap{headerView: v} }

// headerView is a header map as policies see it. For requests, host is
// the request's Host: HTTP/1.1 parsers (Go's among them) and HTTP/2's
// :authority keep it out of the header map, but in ngrok's model it is a
// header like any other, so req.headers['host'], hasReqHeader('host') and
// getReqHeader('host') see it (ngrok's "rate limit by host" example keys on
// it).
type headerView struct {
	h    http.Header
	host string // "" for responses and trailers
}

func (v headerView) values(key string) ([]string, bool) {
	if v.host != "" && len(key) == 4 && strings.EqualFold(key, "host") {
		if vv, ok := v.h["Host"]; ok {
			return vv, true
		}
		return []string{v.host}, true
	}
	return headerValues(v.h, key)
}

// hostAdded says whether the view shows a host field the map lacks.
func (v headerView) hostAdded() bool {
	if v.host == "" {
		return false
	}
	_, ok := v.h["Host"]
	return !ok
}

// headerValues looks a field name up case-insensitively.
func headerValues(h http.Header, key string) ([]string, bool) {
	if h == nil {
		return nil, false
	}
	if v, ok := h[key]; ok {
		return v, true
	}
	// Canonicalise on the stack: the map lookup with string(buf) does not
	// allocate, CanonicalMIMEHeaderKey would.
	var buf [64]byte
	if len(key) <= len(buf) {
		upper := true
		for i := 0; i < len(key); i++ {
			c := key[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
			upper = c == '-'
		}
		if v, ok := h[string(buf[:len(key)])]; ok {
			return v, true
		}
	} else if v, ok := h[textproto.CanonicalMIMEHeaderKey(key)]; ok {
		return v, true
	}
	// Headers set with non-canonical keys (direct map writes, HTTP/2).
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func (m *headerMap) base() traits.Mapper {
	if m.lower == nil {
		low := make(map[string][]string, len(m.h)+1)
		for k, v := range m.h {
			lk := strings.ToLower(k)
			low[lk] = append(low[lk], v...)
		}
		if m.hostAdded() {
			low["host"] = []string{m.host}
		}
		m.lower = adapter.NativeToValue(low).(traits.Mapper)
	}
	return m.lower
}

func (m *headerMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	v, found := m.values(string(k))
	if !found {
		return nil, false
	}
	return types.NewStringList(adapter, v), true
}

func (m *headerMap) Get(key ref.Val) ref.Val {
	if v, ok := m.Find(key); ok {
		return v
	}
	return types.NewErrWithNodeID(0, "no such key: %v", key)
}

func (m *headerMap) Contains(key ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.False
	}
	_, found := m.values(string(k))
	return types.Bool(found)
}

func (m *headerMap) ConvertToNative(t reflect.Type) (any, error) { return m.base().ConvertToNative(t) }
func (m *headerMap) ConvertToType(t ref.Type) ref.Val            { return m.base().ConvertToType(t) }
func (m *headerMap) Equal(o ref.Val) ref.Val                     { return m.base().Equal(o) }
func (m *headerMap) Type() ref.Type                              { return types.MapType }
func (m *headerMap) Value() any                                  { return m.base().Value() }
func (m *headerMap) Iterator() traits.Iterator                   { return m.base().Iterator() }
func (m *headerMap) Size() ref.Val {
	n := len(m.h)
	if m.hostAdded() {
		n++
	}
	return types.Int(n)
}

var _ traits.Mapper = (*headerMap)(nil)

// toNative converts a CEL value into plain Go: string, int64, uint64,
// float64, bool, []byte, nil, time.Time, time.Duration, []any,
// map[string]any.
func toNative(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Null:
		return nil, nil
	case types.Timestamp:
		return x.Time, nil
	case types.Duration:
		return x.Duration, nil
	case *types.Err:
		return nil, x
	case traits.Mapper:
		out := map[string]any{}
		it := x.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			val, err := toNative(x.Get(k))
			if err != nil {
				return nil, err
			}
			ks, ok := k.(types.String)
			if ok {
				out[string(ks)] = val
			} else {
				out[fmt.Sprint(k.Value())] = val
			}
		}
		return out, nil
	case traits.Lister:
		n, _ := x.Size().(types.Int)
		out := make([]any, 0, int(n))
		it := x.Iterator()
		for it.HasNext() == types.True {
			val, err := toNative(it.Next())
			if err != nil {
				return nil, err
			}
			out = append(out, val)
		}
		return out, nil
	}
	if v == nil {
		return nil, nil
	}
	return v.Value(), nil
}

// formatValue renders a value for interpolation into a string: strings as
// they are, numbers plainly, timestamps in RFC 3339, lists and maps as JSON.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonable makes values JSON-friendly (times and durations as strings) and
// orders nothing: encoding/json sorts map keys itself.
func jsonable(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case time.Time, time.Duration:
		return formatValue(x)
	}
	return v
}
