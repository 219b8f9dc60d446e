package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// Errors the upstream side produces; errorResponse maps them to answers.
var (
	errBodyTooLarge   = &exchange.Error{Status: http.StatusRequestEntityTooLarge, Msg: "request body too large"}
	errNoUpstream     = &exchange.Error{Status: http.StatusServiceUnavailable, Msg: "no upstream configured"}
	errUnknownHost    = &exchange.Error{Status: http.StatusNotFound, Msg: "no endpoint for this host"}
	errNoHost         = &exchange.Error{Status: http.StatusMisdirectedRequest, Msg: "no endpoint for this host"}
	errNotConfigured  = &exchange.Error{Status: http.StatusServiceUnavailable, Msg: "proxy not configured"}
	errConnect        = &exchange.Error{Status: http.StatusMethodNotAllowed, Msg: "CONNECT is not supported"}
	errBadHost        = &exchange.Error{Status: http.StatusBadRequest, Msg: "malformed Host header"}
	errBadTarget      = &exchange.Error{Status: http.StatusBadRequest, Msg: "invalid request target"}
	errBadLength      = &exchange.Error{Status: http.StatusBadRequest, Msg: "invalid Content-Length"}
	errForwardLoop    = &exchange.Error{Status: http.StatusLoopDetected, Msg: "forward-internal nested too deep"}
	errUnknownForward = &exchange.Error{Status: http.StatusBadGateway, Msg: "forward-internal: no such internal endpoint"}
	// errClientClosed replaces whatever failed once the client had gone
	// (its h2 stream reset, its deadline passed): nginx's 499, logged at
	// info level, never counted against the upstream.
	errClientClosed = &exchange.Error{Status: 499, Msg: "client closed the request"}
)

// dialError marks a failure to connect: the request never reached the
// upstream, so it may be retried on another target.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// clientBodyError marks a failure reading the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// classify turns any error reaching the proxy into an *exchange.Error: the
// one place that decides the status and the text a client sees.
func classify(err error) *exchange.Error {
	var xe *exchange.Error
	if errors.As(err, &xe) {
		if xe.Status < 100 || xe.Status > 999 {
			return &exchange.Error{Status: http.StatusInternalServerError, Msg: xe.Msg, Err: err}
		}
		return xe
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errBodyTooLarge
	}
	var cbe *clientBodyError
	if errors.As(err, &cbe) {
		if isTimeout(cbe.err) {
			return &exchange.Error{Status: http.StatusRequestTimeout, Msg: "request body not received in time", Err: err}
		}
		return &exchange.Error{Status: http.StatusBadRequest, Msg: "malformed or interrupted request body", Err: err}
	}
	if errors.Is(err, upstream.ErrNoHealthyUpstream) {
		return &exchange.Error{Status: http.StatusServiceUnavailable, Msg: "no healthy upstream", Err: err}
	}
	var de *dialError
	if errors.As(err, &de) {
		if isTimeout(err) {
			return &exchange.Error{Status: http.StatusGatewayTimeout, Msg: "upstream connect timed out", Err: err}
		}
		return &exchange.Error{Status: http.StatusBadGateway, Msg: "upstream connect failed", Err: err}
	}
	if isTimeout(err) {
		return &exchange.Error{Status: http.StatusGatewayTimeout, Msg: "upstream response timed out", Err: err}
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) {
		return &exchange.Error{Status: http.StatusBadGateway, Msg: "upstream closed the connection", Err: err}
	}
	return &exchange.Error{Status: http.StatusBadGateway, Msg: "upstream request failed", Err: err}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errorResponse builds the short plain-text answer for err, e.g.
// "502 Bad Gateway: upstream connect failed (request id 7f3a...)".
// grpcError is errorResponse for a gRPC request: a trailers-only answer
// (HTTP 200, no body, grpc-status and grpc-message in the header block)
// whose status follows gRPC's HTTP-to-gRPC mapping, as Envoy answers, so a
// gRPC client gets UNAVAILABLE for a down upstream rather than a text page
// it cannot decode.
func grpcError(id string, xe *exchange.Error) *exchange.Response {
	code := "2" // UNKNOWN
	switch xe.Status {
	case http.StatusBadRequest:
		code = "13" // INTERNAL
	case http.StatusUnauthorized:
		code = "16" // UNAUTHENTICATED
	case http.StatusForbidden:
		code = "7" // PERMISSION_DENIED
	case http.StatusNotFound:
		code = "12" // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		code = "14" // UNAVAILABLE
	case errClientClosed.Status:
		code = "1" // CANCELLED
	}
	msg := strconv.Itoa(xe.Status) + " " + xe.Msg + " (request id " + id + ")"
	return &exchange.Response{
		StatusCode: http.StatusOK,
		Header: http.Header{
			"Content-Type":  {"application/grpc"},
			"Grpc-Status":   {code},
			"Grpc-Message":  {url.PathEscape(msg)},
			"Cache-Control": {"no-store"},
		},
		ContentLength: 0,
		Generated:     true,
	}
}

func errorResponse(id string, err error) (*exchange.Response, *exchange.Error) {
	xe := classify(err)
	var b strings.Builder
	b.WriteString(strconv.Itoa(xe.Status))
	if t := http.StatusText(xe.Status); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	if xe.Msg != "" {
		b.WriteString(": ")
		b.WriteString(xe.Msg)
	}
	b.WriteString(" (request id ")
	b.WriteString(id)
	b.WriteString(")\n")
	body := b.String()
	h := http.Header{
		"Content-Type":           {"text/plain; charset=utf-8"},
		"X-Content-Type-Options": {"nosniff"},
		"Cache-Control":          {"no-store"},
	}
	return &exchange.Response{
		StatusCode:    xe.Status,
		Header:        h,
		ContentLength: int64(len(body)),
		Body:          readCloser{strings.NewReader(body)},
		Generated:     true,
	}, xe
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
