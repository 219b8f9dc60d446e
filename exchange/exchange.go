package exchange

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// Endpoint describes the endpoint a connection or request belongs to.
type Endpoint struct {
	ID       string // stable id, e.g. "ep_app.example.com_443"
	URL      string // the endpoint URL as configured, e.g. https://app.example.com:443
	Scheme   string // http, https, tcp, tls
	Host     string // host the endpoint answers for; "" = any
	Port     int
	Internal bool // *.internal: reachable only through forward-internal
}

// Conn is one client connection. Fields are set by the proxy before the
// on_tcp_connect phase and never change afterwards, except Vars.
type Conn struct {
	ID         string
	ClientAddr netip.AddrPort // the real client (after trusted proxies or a tunnel)
	// ClientIP is ClientAddr's address as text (IPv4-mapped addresses
	// unmapped), formatted once per connection; "" means not formatted
	// (readers format ClientAddr). Whoever changes ClientAddr sets or
	// clears it.
	ClientIP   string
	PeerAddr   netip.AddrPort // the TCP peer that connected to us
	ServerAddr netip.AddrPort // the local address the client connected to
	Start      time.Time
	TLS        *tls.ConnectionState // nil for plaintext; for passthrough only SNI is known
	SNI        string
	Endpoint   *Endpoint
	// Bytes counts what the client sent and was sent on this connection
	// so far, as bytes on the wire (TLS records included); nil where the
	// proxy does not count (piped tcp:// connections).
	Bytes *ByteCounts

	// Vars holds per-connection policy variables (vars.*, actions results
	// from on_tcp_connect); requests on the connection start from a copy.
	Vars map[string]any
}

// ByteCounts are a connection's running byte totals.
type ByteCounts struct {
	In  atomic.Int64 // from the client
	Out atomic.Int64 // to the client
}

// Request is an HTTP request as the policy engine sees and changes it.
// Changes made in the on_http_request phase are what the upstream receives.
type Request struct {
	Method   string
	Scheme   string // "http" or "https": how the client reached us
	Host     string // Host header / :authority, possibly with a port
	Path     string // escaped path as sent on the wire, always starting with "/" (or "*")
	RawQuery string // without the leading '?'
	Proto    string // "HTTP/1.1", "HTTP/2.0"
	Header   http.Header
	// ContentLength is -1 when unknown (chunked / streaming).
	ContentLength int64
	Body          io.ReadCloser // never nil; http.NoBody when empty
	Trailer       http.Header
}

// URI returns the request target (escaped path and query).
func (r *Request) URI() string {
	if r.RawQuery == "" {
		return r.Path
	}
	return r.Path + "?" + r.RawQuery
}

// Response is an HTTP response from the upstream or produced by an action.
// Changes made in the on_http_response phase are what the client receives.
type Response struct {
	StatusCode    int
	Header        http.Header
	ContentLength int64         // -1 when unknown
	Body          io.ReadCloser // nil means no body
	Trailer       http.Header
	// Generated is true when the response was produced by sluice (an
	// action or an error), not by an upstream.
	Generated bool
}

// Exchange is one request/response pair travelling through the proxy.
type Exchange struct {
	Ctx      context.Context
	ID       string // request id, echoed in X-Request-Id, error bodies and logs
	Start    time.Time
	Conn     *Conn
	Endpoint *Endpoint
	Req      *Request
	Res      *Response // nil until the upstream answered or an action answered
	Log      *slog.Logger
	Vars     map[string]any // vars.* and action results (actions.ngrok.*)

	// ForwardInternal, when set by the request phase, sends the request to
	// the internal endpoint with this URL instead of this endpoint's upstream.
	ForwardInternal string

	// Internals, set by the proxy, says which internal endpoints exist, so
	// that forward-internal fails in its own action (where on_error:
	// continue lets the next action answer) rather than after the phase.
	// nil: not known; the proxy then answers a missing one with a 502.
	Internals InternalEndpoints

	// Pinned is owned by the Hooks implementation: it keeps the policy version
	// chosen in OnRequest so that OnResponse and Done use the same one.
	Pinned any
}

// Error is an error that maps to an HTTP status. The proxy turns every error
// that reaches it into a short response through one path; errors that are not
// *Error become 500 (or 502 when they come from the upstream).
type Error struct {
	Status int    // HTTP status to answer with
	Msg    string // short, safe to show to the client
	Err    error  // the cause, logged but not shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf-like helper for the common case.
func NewError(status int, msg string, cause error) *Error {
	return &Error{Status: status, Msg: msg, Err: cause}
}

// ErrCloseConnection asks the proxy to close the client connection without
// an HTTP answer (close-connection, on_tcp_connect deny/restrict-ips).
var ErrCloseConnection = errors.New("connection closed by policy")

// Hooks are the three points where the proxy lets a policy engine act. The
// proxy knows nothing else of policies. A nil Hooks means "no policy".
//
// OnRequest may set x.Res (the proxy then answers without the upstream),
// x.ForwardInternal, or change x.Req. OnResponse may change or replace
// x.Res. Done is called exactly once per exchange that OnRequest saw, after
// the response was written (or the exchange failed), so that versions pinned
// in x.Pinned can be released.
type Hooks interface {
	OnConnect(c *Conn) error
	OnRequest(x *Exchange) error
	OnResponse(x *Exchange) error
	Done(x *Exchange)
}

// InternalEndpoints tells whether an internal endpoint can take a request.
type InternalEndpoints interface {
	// HasInternal reports whether an internal endpoint answers to url
	// (scheme://name.internal[:port], as forward-internal normalises it).
	HasInternal(url string) bool
}
