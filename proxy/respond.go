package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"unsafe"

	"github.com/sluicehq/sluice/exchange"
)

var errClientGone = errors.New("client went away")

// writeResponse sends x.Res to the client, streaming its body.
func (s *Server) writeResponse(xs *xstate, w http.ResponseWriter, r *http.Request) (int64, error) {
	x := &xs.x
	res := x.Res
	h := w.Header()
	names := connectionNames(res.Header)
	upVia, upCL := res.Header["Via"], res.Header["Content-Length"]
	hw, engine := w.(*h1writer)
	if engine && len(h) == 0 && res.StatusCode != http.StatusSwitchingProtocols && sameMap(res.Header, xs.head.header) {
		// The upstream's header map is ours (xs.head): the HTTP/1.1 writer
		// takes it over, without the hop-by-hop fields, instead of a copy,
		// and leaves its own empty map for the next answer.
		hw.hdr, xs.head.header = res.Header, h
		h = hw.hdr
		// readResponseHead validated every field; with no policy to change
		// them since, commit need not check them again. What is added
		// below is sluice's own.
		hw.checked = xs.nhooked == 0
		for k := range h {
			if hopField(names, k) {
				delete(h, k)
			}
		}
	} else {
		for k, vv := range res.Header {
			if !hopField(names, k) {
				h[k] = vv
			}
		}
	}
	status := res.StatusCode
	if status < 100 || status > 999 {
		status = http.StatusBadGateway
	}
	if status == http.StatusSwitchingProtocols {
		if xs.upconn != nil {
			return s.upgrade(xs, w, r)
		}
		// A 101 with no upstream connection to switch to (a policy
		// answer) cannot be honoured.
		status = http.StatusBadGateway
	} else if xs.upconn != nil {
		// A policy replaced the upstream's 101: the switched connection is
		// of no use any more.
		xs.upconn.close()
		xs.upconn = nil
	}
	if engine {
		// The engine's writer reads the map when it commits the head,
		// which for an answer without a body is after the exchange (and
		// xs) is gone: the value lives in the writer, not in xs.
		hw.idv[0] = x.ID
		h["X-Request-Id"] = hw.idv[:]
	} else {
		h["X-Request-Id"] = []string{x.ID} // net/http and h2 copy the map at WriteHeader
	}
	via := via11
	if r.ProtoMajor == 2 {
		via = via20
	}
	if vv := upVia; len(vv) > 0 {
		h["Via"] = append(vv[:len(vv):len(vv)], via[0])
	} else {
		h["Via"] = via
	}
	bodyless := r.Method == http.MethodHead || status == http.StatusNoContent ||
		status == http.StatusNotModified || status < 200
	if bodyless {
		if cl := upCL; cl != nil && status != http.StatusNoContent && status >= 200 {
			h["Content-Length"] = cl
		}
	} else if res.ContentLength >= 0 {
		h["Content-Length"] = contentLength(upCL, res.ContentLength)
	}
	if xs.closeCon && r.ProtoMajor == 1 {
		h["Connection"] = []string{"close"}
	}
	if len(res.Trailer) > 0 && !bodyless {
		// Declared up front so that net/http chunks the body instead of
		// computing a Content-Length that leaves no room for trailers.
		for k := range res.Trailer {
			if !badTrailer(k) {
				h["Trailer"] = append(h["Trailer"], k)
			}
		}
	}
	w.WriteHeader(status)
	if bodyless || res.Body == nil {
		if res.Body != nil {
			res.Body.Close()
		}
		return 0, nil
	}
	return copyBody(w, res)
}

// hopField says whether an upstream answer's field stays behind: a
// hop-by-hop one, one that Connection names, or one set anew here.
func hopField(names []string, k string) bool {
	return skipResponseHeader(k) || (names != nil && listed(names, k))
}

// sameMap says whether a and b are the same map.
func sameMap(a, b http.Header) bool {
	return a != nil && *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}

// contentLength reuses the upstream's header value when it says n already.
func contentLength(cur []string, n int64) []string {
	var b [20]byte
	if len(cur) == 1 && cur[0] == string(strconv.AppendInt(b[:0], n, 10)) {
		return cur
	}
	return []string{strconv.FormatInt(n, 10)}
}

// copyBody streams the response body. What was read is flushed as soon as
// the upstream has nothing more buffered, whatever the framing, so a slow
// upstream's bytes reach the client at once while a fast one's big body is
// not flushed on every small read.
func copyBody(w http.ResponseWriter, res *exchange.Response) (int64, error) {
	bp, pool := getBuf(res.ContentLength)
	defer pool.Put(bp)
	buf := *bp
	body := res.Body
	defer body.Close()
	fl, _ := w.(http.Flusher)
	bb, _ := body.(interface{ buffered() int })
	if fl != nil && bb != nil && bb.buffered() == 0 {
		// The upstream sent its head but no body yet (a slow or long-poll
		// answer): the client gets the head now, not when the body starts.
		fl.Flush()
	}
	var n int64
	for {
		nr, rerr := body.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, errClientGone
			}
			if fl != nil && rerr == nil && (bb == nil || bb.buffered() == 0) {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	tr := res.Trailer
	if ts, ok := body.(interface{ trailer() http.Header }); ok {
		tr = ts.trailer()
	}
	if len(tr) > 0 {
		h := w.Header()
		for k, vv := range tr {
			if !badTrailer(k) {
				h[http.TrailerPrefix+k] = vv
			}
		}
	}
	return n, nil
}
