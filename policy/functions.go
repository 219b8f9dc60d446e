package policy

// ngrok's CEL functions ("macros" in its docs) that cel-go's standard
// library and extensions do not already provide.

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/cespare/xxhash/v2"
)

var crc64Table = crc64.MakeTable(crc64.ISO)

var hashes = map[string]func() hash.Hash{
	"md5":      md5.New,
	"sha1":     sha1.New,
	"sha256":   sha256.New,
	"sha512":   sha512.New,
	"crc32":    func() hash.Hash { return crc32.NewIEEE() },
	"crc64":    func() hash.Hash { return crc64.New(crc64Table) },
	"xxhash64": func() hash.Hash { return xxhash.New() },
}

func digest(name string, in, format ref.Val) ref.Val {
	s, ok := in.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(in)
	}
	h := hashes[name]()
	h.Write([]byte(s))
	sum := h.Sum(nil)
	f := "hex"
	if format != nil {
		fs, ok := format.(types.String)
		if !ok {
			return types.MaybeNoSuchOverloadErr(format)
		}
		f = string(fs)
	}
	switch f {
	case "hex":
		return types.String(hex.EncodeToString(sum))
	case "base64":
		return types.String(base64.StdEncoding.EncodeToString(sum))
	}
	return types.NewErr("hash.%s: format must be \"hex\" or \"base64\", got %q", name, f)
}

func strFn(f func(string) ref.Val) func(ref.Val) ref.Val {
	return func(v ref.Val) ref.Val {
		s, ok := v.(types.String)
		if !ok {
			return types.MaybeNoSuchOverloadErr(v)
		}
		return f(string(s))
	}
}

// prefixCache remembers parsed CIDRs: policies repeat the same few
// literals on every request. It is bounded because a CIDR may also come
// from request data.
var (
	prefixCache sync.Map // string -> netip.Prefix (invalid: not a CIDR)
	prefixCount atomic.Int64
)

func parseCIDR(cidr string) netip.Prefix {
	if v, ok := prefixCache.Load(cidr); ok {
		return v.(netip.Prefix)
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		// A bare address counts as a /32 or /128.
		if a, err2 := netip.ParseAddr(cidr); err2 == nil {
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
	} else {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-(p.Addr().BitLen()-p.Addr().Unmap().BitLen())).Masked()
	}
	if prefixCount.Load() < 4096 {
		if _, loaded := prefixCache.LoadOrStore(cidr, p); !loaded {
			prefixCount.Add(1)
		}
	}
	return p
}

func inCidr(ip string, cidr string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	p := parseCIDR(cidr)
	return p.IsValid() && p.Contains(a.Unmap())
}

func jsonEncode(v ref.Val) ref.Val {
	n, err := toNative(v)
	if err != nil {
		return types.NewErr("json.encode: %v", err)
	}
	b, err := json.Marshal(jsonable(n))
	if err != nil {
		return types.NewErr("json.encode: %v", err)
	}
	return types.String(b)
}

func jsonDecode(s string) ref.Val {
	var x any
	if err := json.Unmarshal([]byte(s), &x); err != nil {
		return types.NewErr("json.decode: %v", err)
	}
	return adapter.NativeToValue(x)
}

func queryDecode(s string) ref.Val {
	q, err := url.ParseQuery(s)
	if err != nil {
		return types.NewErr("queryString.decode: %v", err)
	}
	m := make(map[string]string, len(q))
	for k, v := range q {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return types.NewStringStringMap(adapter, m)
}

func queryEncode(v ref.Val) ref.Val {
	n, err := toNative(v)
	if err != nil {
		return types.NewErr("queryString.encode: %v", err)
	}
	m, ok := n.(map[string]any)
	if !ok {
		return types.NewErr("queryString.encode: need a map")
	}
	q := url.Values{}
	for k, val := range m {
		if l, ok := val.([]any); ok {
			for _, e := range l {
				q.Add(k, formatValue(e))
			}
			continue
		}
		q.Set(k, formatValue(val))
	}
	return types.String(q.Encode())
}

func parseURL(s string) ref.Val {
	u, err := url.Parse(s)
	if err != nil {
		return types.NewErr("url.parse: %v", err)
	}
	m := map[string]any{
		"scheme": u.Scheme, "host": u.Hostname(), "port": u.Port(), "path": u.Path,
		"raw_path": u.EscapedPath(), "query": u.RawQuery, "fragment": u.Fragment,
		"authority": u.Host, "user": u.User.Username(),
		"query_params": map[string][]string(u.Query()),
	}
	return adapter.NativeToValue(m)
}

func isPrivateIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Unmap().Is4() && a.IsPrivate()
}

func isURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

// hourOf is the UTC hour of an RFC 3339 time.
func hourOf(s string) ref.Val {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return types.NewErr("hour: %q is not an RFC 3339 time", s)
	}
	return types.Int(t.UTC().Hour())
}

func basicAuth(u, p ref.Val) ref.Val {
	us, ok1 := u.(types.String)
	ps, ok2 := p.(types.String)
	if !ok1 || !ok2 {
		return types.MaybeNoSuchOverloadErr(u)
	}
	return types.String("Basic " + base64.StdEncoding.EncodeToString([]byte(string(us)+":"+string(ps))))
}

// lookupList backs getReqHeader/getResHeader/getQueryParam: the values, or
// an empty list.
func lookupList(m, k ref.Val) ref.Val {
	if mp, ok := m.(traits.Mapper); ok {
		if v, found := mp.Find(k); found {
			return v
		}
	}
	return emptyStrs
}

// lookupFirst backs getReqCookie/getResCookie: the first cookie of a name.
func lookupFirst(m, k ref.Val) ref.Val {
	if mp, ok := m.(traits.Mapper); ok {
		if v, found := mp.Find(k); found {
			if l, ok := v.(traits.Lister); ok && l.Size() != types.IntZero {
				return l.Get(types.IntZero)
			}
		}
	}
	return types.NewErr("no cookie named %v", k)
}

func functions() []cel.EnvOption {
	S, B, I, D, Dyn := cel.StringType, cel.BoolType, cel.IntType, cel.DoubleType, cel.DynType
	strToStr := func(f func(string) string) cel.OverloadOpt {
		return cel.UnaryBinding(strFn(func(s string) ref.Val { return types.String(f(s)) }))
	}
	strToBool := func(f func(string) bool) cel.OverloadOpt {
		return cel.UnaryBinding(strFn(func(s string) ref.Val { return types.Bool(f(s)) }))
	}
	escape := func(s string) string { return url.QueryEscape(s) }
	unescape := func(s string) ref.Val {
		u, err := url.QueryUnescape(s)
		if err != nil {
			return types.NewErr("url.unescape: %v", err)
		}
		return types.String(u)
	}
	decodeB64 := func(s string) ref.Val {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
				return types.NewErr("decodeBase64: %v", err)
			}
		}
		return types.String(b)
	}
	opts := []cel.EnvOption{
		cel.Function("inCidrRange",
			cel.Overload("inCidrRange_string_string", []*cel.Type{S, S}, B,
				cel.BinaryBinding(func(ip, c ref.Val) ref.Val {
					a, ok1 := ip.(types.String)
					b, ok2 := c.(types.String)
					if !ok1 || !ok2 {
						return types.MaybeNoSuchOverloadErr(ip)
					}
					return types.Bool(inCidr(string(a), string(b)))
				}))),
		cel.Function("inCidrRanges",
			cel.Overload("inCidrRanges_string_list", []*cel.Type{S, cel.ListType(S)}, B,
				cel.BinaryBinding(func(ip, cs ref.Val) ref.Val {
					a, ok1 := ip.(types.String)
					l, ok2 := cs.(traits.Lister)
					if !ok1 || !ok2 {
						return types.MaybeNoSuchOverloadErr(ip)
					}
					it := l.Iterator()
					for it.HasNext() == types.True {
						if c, ok := it.Next().(types.String); ok && inCidr(string(a), string(c)) {
							return types.True
						}
					}
					return types.False
				}))),
		cel.Function("basic_auth.encode",
			cel.Overload("basic_auth_encode", []*cel.Type{S, S}, S, cel.BinaryBinding(basicAuth))),
		cel.Function("url.escape", cel.Overload("url_escape", []*cel.Type{S}, S, strToStr(escape))),
		cel.Function("escapeUrl", cel.MemberOverload("string_escapeUrl", []*cel.Type{S}, S, strToStr(escape))),
		cel.Function("url.unescape", cel.Overload("url_unescape", []*cel.Type{S}, S, cel.UnaryBinding(strFn(unescape)))),
		cel.Function("unescapeUrl", cel.MemberOverload("string_unescapeUrl", []*cel.Type{S}, S, cel.UnaryBinding(strFn(unescape)))),
		cel.Function("url.parse", cel.Overload("url_parse", []*cel.Type{S}, cel.MapType(S, Dyn), cel.UnaryBinding(strFn(parseURL)))),
		cel.Function("parseUrl", cel.MemberOverload("string_parseUrl", []*cel.Type{S}, cel.MapType(S, Dyn), cel.UnaryBinding(strFn(parseURL)))),
		// time.now is an RFC 3339 string (ngrok's variable reference), yet
		// ngrok's own example "route by time of day" calls time.now.hour():
		// both work. timestamp(time.now).getHours() is the CEL way.
		cel.Function("hour",
			cel.MemberOverload("string_hour", []*cel.Type{S}, I, cel.UnaryBinding(strFn(hourOf))),
			cel.MemberOverload("timestamp_hour", []*cel.Type{cel.TimestampType}, I, cel.UnaryBinding(func(v ref.Val) ref.Val {
				t, ok := v.(types.Timestamp)
				if !ok {
					return types.MaybeNoSuchOverloadErr(v)
				}
				return types.Int(t.UTC().Hour())
			}))),
		cel.Function("isURL", cel.MemberOverload("string_isURL", []*cel.Type{S}, B, strToBool(isURL))),
		cel.Function("isPrivateIp", cel.MemberOverload("string_isPrivateIp", []*cel.Type{S}, B, strToBool(isPrivateIP))),
		cel.Function("encodeJson",
			cel.MemberOverload("list_encodeJson", []*cel.Type{cel.ListType(Dyn)}, S, cel.UnaryBinding(jsonEncode)),
			cel.MemberOverload("map_encodeJson", []*cel.Type{cel.MapType(Dyn, Dyn)}, S, cel.UnaryBinding(jsonEncode))),
		cel.Function("json.decode", cel.Overload("json_decode", []*cel.Type{S}, Dyn, cel.UnaryBinding(strFn(jsonDecode)))),
		cel.Function("decodeJson", cel.MemberOverload("string_decodeJson", []*cel.Type{S}, Dyn, cel.UnaryBinding(strFn(jsonDecode)))),
		cel.Function("isJson", cel.MemberOverload("string_isJson", []*cel.Type{S}, B, strToBool(func(s string) bool { return json.Valid([]byte(s)) }))),
		cel.Function("queryString.decode", cel.Overload("queryString_decode", []*cel.Type{S}, cel.MapType(S, S), cel.UnaryBinding(strFn(queryDecode)))),
		cel.Function("decodeQueryString", cel.MemberOverload("string_decodeQueryString", []*cel.Type{S}, cel.MapType(S, S), cel.UnaryBinding(strFn(queryDecode)))),
		cel.Function("queryString.encode", cel.Overload("queryString_encode", []*cel.Type{cel.MapType(S, Dyn)}, S, cel.UnaryBinding(queryEncode))),
		cel.Function("encodeQueryString", cel.MemberOverload("map_encodeQueryString", []*cel.Type{cel.MapType(S, Dyn)}, S, cel.UnaryBinding(queryEncode))),
		cel.Function("isQueryString", cel.MemberOverload("string_isQueryString", []*cel.Type{S}, B, strToBool(func(s string) bool {
			_, err := url.ParseQuery(s)
			return err == nil && strings.Contains(s, "=")
		}))),
		cel.Function("encodeBase64", cel.MemberOverload("string_encodeBase64", []*cel.Type{S}, S, strToStr(func(s string) string {
			return base64.StdEncoding.EncodeToString([]byte(s))
		}))),
		cel.Function("decodeBase64", cel.MemberOverload("string_decodeBase64", []*cel.Type{S}, S, cel.UnaryBinding(strFn(decodeB64)))),
		cel.Function("lower", cel.MemberOverload("string_lower", []*cel.Type{S}, S, strToStr(strings.ToLower))),
		cel.Function("upper", cel.MemberOverload("string_upper", []*cel.Type{S}, S, strToStr(strings.ToUpper))),
		cel.Function("rand.double", cel.Overload("rand_double", nil, D,
			cel.FunctionBinding(func(...ref.Val) ref.Val { return types.Double(rand.Float64()) }))),
		cel.Function("rand.int",
			cel.Overload("rand_int", nil, I,
				cel.FunctionBinding(func(...ref.Val) ref.Val { return types.Int(rand.IntN(2)) })),
			cel.Overload("rand_int_int_int", []*cel.Type{I, I}, I,
				cel.BinaryBinding(func(lo, hi ref.Val) ref.Val {
					l, ok1 := lo.(types.Int)
					h, ok2 := hi.(types.Int)
					if !ok1 || !ok2 {
						return types.MaybeNoSuchOverloadErr(lo)
					}
					if l < 0 || h < l {
						return types.NewErr("rand.int: need 0 <= min <= max, got %d, %d", l, h)
					}
					return types.Int(int64(l) + rand.Int64N(int64(h-l)+1))
				}))),
		cel.Function("_sluice_get", cel.Overload("_sluice_get_map_string",
			// Dyn, not map(string, list(string)): these are only reached through
			// macros over fixed variables, and a parameterised map type makes
			// cel-go check every entry's type on each call.
			[]*cel.Type{Dyn, S}, cel.ListType(S), cel.BinaryBinding(lookupList))),
		cel.Function("_sluice_first", cel.Overload("_sluice_first_map_string",
			[]*cel.Type{Dyn, S}, cel.MapType(S, Dyn), cel.BinaryBinding(lookupFirst))),
	}
	for name := range hashes {
		n := name
		opts = append(opts,
			cel.Function("hash."+n,
				cel.Overload("hash_"+n, []*cel.Type{S}, S, cel.UnaryBinding(func(v ref.Val) ref.Val { return digest(n, v, nil) })),
				cel.Overload("hash_"+n+"_format", []*cel.Type{S, S}, S, cel.BinaryBinding(func(v, f ref.Val) ref.Val { return digest(n, v, f) }))),
			cel.Function(n,
				cel.MemberOverload("string_"+n, []*cel.Type{S}, S, cel.UnaryBinding(func(v ref.Val) ref.Val { return digest(n, v, nil) })),
				cel.MemberOverload("string_"+n+"_format", []*cel.Type{S, S}, S, cel.BinaryBinding(func(v, f ref.Val) ref.Val { return digest(n, v, f) }))),
		)
	}
	return opts
}
