package policy

// Load-time CEL: compiling expressions and templates with errors that point
// into the policy file (file:line:col), including columns inside an
// expression.

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// PosError is a load error at a position in a policy file.
type PosError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
}

func (e *PosError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// compiler holds what compiling needs: the file name and source (for
// positions), the CEL environment and the phase being compiled.
type compiler struct {
	file   string
	lines  []string
	env    *cel.Env
	phases int // phases the code being compiled runs in (0: unchecked)
	// results is set once an expression reads actions.*: only then do
	// actions build their result variables (see State.WantsResults).
	results bool
}

func newCompiler(file string, src []byte) *compiler {
	return &compiler{file: file, lines: strings.Split(string(src), "\n")}
}

// defaultCompiler serves Configs built outside a policy (action tests).
func defaultCompiler() *compiler { return newCompiler("config", nil) }

// errAt builds a PosError at byte offset off of n's value (off < 0: the
// node itself).
func (c *compiler) errAt(n *yaml.Node, off int, msg string) error {
	line, col := c.pos(n, off)
	return &PosError{File: c.file, Line: line, Col: col, Msg: msg}
}

// pos maps a byte offset inside a scalar's value to a file position. Exact
// for plain and quoted single-line scalars (escapes included) and for
// literal blocks; approximate for folded multi-line scalars.
func (c *compiler) pos(n *yaml.Node, off int) (int, int) {
	if n == nil {
		return 0, 0
	}
	if off < 0 || n.Kind != yaml.ScalarNode {
		return n.Line, n.Column
	}
	if off > len(n.Value) {
		off = len(n.Value)
	}
	before := n.Value[:off]
	dl := strings.Count(before, "\n")
	lastNL := strings.LastIndexByte(before, '\n')
	dc := utf8.RuneCountInString(before[lastNL+1:])
	switch n.Style {
	case yaml.FoldedStyle:
		// Folding joined the block's lines with one space each: walk the
		// source lines, a line's content and its separator at a time.
		line, ind, rem := n.Line+1, c.indent(n.Line+1), off
		for ; line <= len(c.lines); line++ {
			content := ""
			if l := c.lines[line-1]; len(l) > ind {
				content = l[ind:]
			}
			if rem <= len(content) {
				return line, ind + utf8.RuneCountInString(content[:rem]) + 1
			}
			rem -= len(content) + 1
		}
		return n.Line + 1, ind + 1
	case yaml.LiteralStyle:
		// Content starts on the next line; the block's indentation is
		// that of its first line (deeper indentation is part of the value).
		return n.Line + 1 + dl, c.indent(n.Line+1) + dc + 1
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if dl == 0 {
			if col, ok := c.quotedCol(n, off); ok {
				return n.Line, col
			}
			return n.Line, n.Column + 1 + dc
		}
	default:
		if dl == 0 {
			return n.Line, n.Column + dc
		}
	}
	line := n.Line + dl
	return line, c.indent(line) + dc + 1
}

// indent returns the number of leading spaces of a 1-based source line.
func (c *compiler) indent(line int) int {
	if line < 1 || line > len(c.lines) {
		return 0
	}
	s := c.lines[line-1]
	return len(s) - len(strings.TrimLeft(s, " \t"))
}

// quotedCol walks the source of a quoted scalar, decoding escapes, until
// off bytes of the value were produced.
func (c *compiler) quotedCol(n *yaml.Node, off int) (int, bool) {
	if n.Line < 1 || n.Line > len(c.lines) {
		return 0, false
	}
	line := c.lines[n.Line-1]
	// Column is 1-based in runes; convert to a byte index.
	start := runeIndex(line, n.Column-1)
	if start < 0 || start >= len(line) {
		return 0, false
	}
	i := start + 1 // after the opening quote
	produced := 0
	for produced < off && i < len(line) {
		ch := line[i]
		switch {
		case n.Style == yaml.SingleQuotedStyle && ch == '\'' && i+1 < len(line) && line[i+1] == '\'':
			i += 2
			produced++
		case n.Style == yaml.DoubleQuotedStyle && ch == '\\' && i+1 < len(line):
			w, p := escapeWidth(line[i+1:])
			i += 1 + w
			produced += p
		default:
			_, size := utf8.DecodeRuneInString(line[i:])
			i += size
			produced += size
		}
	}
	if produced != off {
		return 0, false
	}
	return utf8.RuneCountInString(line[:i]) + 1, true
}

// escapeWidth returns how many source bytes follow the backslash of an
// escape and how many value bytes it produces.
func escapeWidth(s string) (int, int) {
	hexRune := func(w int) (int, int) {
		if len(s) < 1+w {
			return len(s), 1
		}
		var r rune
		for _, h := range s[1 : 1+w] {
			r <<= 4
			switch {
			case h >= '0' && h <= '9':
				r |= h - '0'
			case h >= 'a' && h <= 'f':
				r |= h - 'a' + 10
			case h >= 'A' && h <= 'F':
				r |= h - 'A' + 10
			}
		}
		return 1 + w, utf8.RuneLen(r)
	}
	switch s[0] {
	case 'x':
		return 3, 1
	case 'u':
		return hexRune(4)
	case 'U':
		return hexRune(8)
	}
	return 1, 1
}

func runeIndex(s string, runes int) int {
	i := 0
	for n := 0; n < runes; n++ {
		if i >= len(s) {
			return -1
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// offsetIn converts a CEL location (1-based line, 0-based column in runes)
// into a byte offset in src.
func offsetIn(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		nl := strings.IndexByte(src[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	r := runeIndex(src[off:], col)
	if r < 0 {
		return len(src)
	}
	return off + r
}

// expr compiles src, which sits at byte offset base of n's value (base < 0:
// position unknown, use the node). wantBool requires a bool (or dyn)
// result, as rule expressions do.
func (c *compiler) exprAt(src string, n *yaml.Node, base int, wantBool bool) (*Expr, error) {
	if c.env == nil {
		env, err := celEnv()
		if err != nil {
			return nil, fmt.Errorf("policy: CEL environment: %w", err)
		}
		c.env = env
	}
	at := func(off int) int {
		if base < 0 {
			return -1
		}
		return base + off
	}
	if strings.TrimSpace(src) == "" {
		return nil, c.errAt(n, at(0), "empty CEL expression")
	}
	ast, iss := c.env.Compile(src)
	if iss.Err() != nil {
		var errs []error
		for _, e := range iss.Errors() {
			off := offsetIn(src, e.Location.Line(), e.Location.Column())
			if off < len(src) && src[off] == '(' {
				// A call: point at the function's name, not at "(".
				for off > 0 && isIdentByte(src[off-1]) {
					off--
				}
			}
			msg := "CEL: " + firstLine(e.Message)
			// "undeclared reference to 'req'" for req.nosuch, and "type
			// 'string' does not support field selection" for
			// conn.client_ip.nosuch (a string variable with fields): name
			// the whole unknown variable instead, from its start (cel-go
			// may point at a '.' inside it).
			if strings.HasPrefix(e.Message, "undeclared reference to ") ||
				strings.Contains(e.Message, "does not support field selection") {
				start := nameStart(src, off)
				if name := strings.TrimLeft(qualifiedName(src, start), "."); strings.Contains(name, ".") {
					msg = fmt.Sprintf("CEL: unknown variable %q", name)
					off = start
				}
			}
			errs = append(errs, c.errAt(n, at(off), msg))
		}
		return nil, errors.Join(errs...)
	}
	// Variables that do not exist in this phase (res.* in on_http_request,
	// req.* in on_tcp_connect) are load errors, not run-time surprises.
	native := ast.NativeRep()
	var errs []error
	seen := map[string]bool{}
	ids := make([]int64, 0, len(native.ReferenceMap()))
	for id := range native.ReferenceMap() {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		r := native.ReferenceMap()[id]
		if strings.HasPrefix(r.Name, "actions") {
			c.results = true
		}
		i, ok := varIndex[r.Name]
		if !ok || variables[i].phases&c.phases == c.phases || seen[r.Name] {
			continue
		}
		seen[r.Name] = true
		loc := native.SourceInfo().GetStartLocation(id)
		off := nameStart(src, offsetIn(src, loc.Line(), loc.Column()))
		errs = append(errs, c.errAt(n, at(off), fmt.Sprintf("%s is not available in %s", r.Name, phaseNames(c.phases&^variables[i].phases))))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := ast.OutputType()
	if wantBool && !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return nil, c.errAt(n, at(0), fmt.Sprintf("expression must be a bool, but it is a %s", out))
	}
	prg, err := program(c.env, ast)
	if err != nil {
		return nil, c.errAt(n, at(0), "CEL: "+err.Error())
	}
	line, col := c.pos(n, at(0))
	where := c.file
	if line > 0 {
		where = fmt.Sprintf("%s:%d:%d", c.file, line, col)
	}
	return &Expr{src: src, where: where, prg: prg, typ: out, fast: compileFast(native)}, nil
}

// program plans a checked AST. cel-go can panic on some odd constant
// expressions (a map literal with a bytes key, found by fuzzing); that is
// a load error, never a crash.
func program(env *cel.Env, ast *cel.Ast) (prg cel.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			prg, err = nil, fmt.Errorf("cannot plan expression: %v", r)
		}
	}()
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}

// expr compiles a whole config value (or a string found inside it).
func (c *compiler) expr(src string, n *yaml.Node, wantBool bool) (*Expr, error) {
	base := -1
	if n != nil && n.Kind == yaml.ScalarNode {
		base = strings.Index(n.Value, src)
	}
	return c.exprAt(src, n, base, wantBool)
}

func isIdentByte(ch byte) bool {
	return ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
}

// nameStart moves an offset that points into a qualified name (CEL puts
// selects at their dot) back to the name's first character.
func nameStart(src string, off int) int {
	for off > 0 && off <= len(src) {
		ch := src[off-1]
		if ch == '.' || ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' {
			off--
			continue
		}
		break
	}
	return off
}

// qualifiedName returns the dotted identifier starting at off.
func qualifiedName(src string, off int) string {
	end := off
	for end < len(src) {
		ch := src[end]
		if ch == '.' || ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' {
			end++
			continue
		}
		break
	}
	if off > end {
		return ""
	}
	return strings.TrimRight(src[off:end], ".")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func phaseNames(mask int) string {
	var out []string
	for _, p := range []Phase{OnTCPConnect, OnHTTPRequest, OnHTTPResponse} {
		if mask&(1<<p) != 0 {
			out = append(out, p.String())
		}
	}
	return strings.Join(out, " or ")
}
