package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
)

// floor is the leanest HTTP/1.1 reverse proxy Go allows, for the bench's
// "Go floor" row: a goroutine per client connection with its own upstream
// connection, the request head copied through line by line, the answer's
// Content-Length read and its body copied, no timeouts, no header
// handling, no pooling, no metrics. It only serves what the bench sends
// (bodyless GETs answered with a Content-Length) and is no proxy for real
// use: it shows what the goroutine-per-connection model costs on this
// machine with nothing else on top, the floor under sluice's HTTP/1.1
// numbers.
func floor(listen, upstream string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go floorConn(c, upstream)
	}
}

func floorConn(c net.Conn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	cr, cw := bufio.NewReaderSize(c, 4096), bufio.NewWriterSize(c, 8192)
	ur, uw := bufio.NewReaderSize(u, 8192), bufio.NewWriterSize(u, 4096)
	for floorExchange(cr, cw, ur, uw) == nil {
	}
}

var errFloorBody = errors.New("floor: only bodyless requests")

// floorExchange forwards one request and its answer.
func floorExchange(cr *bufio.Reader, cw *bufio.Writer, ur *bufio.Reader, uw *bufio.Writer) error {
	if err := copyHead(cr, uw, nil); err != nil {
		return err
	}
	if err := uw.Flush(); err != nil {
		return err
	}
	n := int64(-1)
	if err := copyHead(ur, cw, &n); err != nil {
		return err
	}
	if n < 0 {
		return errFloorBody
	}
	if _, err := io.CopyN(cw, ur, n); err != nil {
		return err
	}
	return cw.Flush()
}

var contentLength = []byte("content-length:")

// copyHead copies header lines up to the empty one; with cl non-nil it
// notes the Content-Length. A request with a body is refused.
func copyHead(r *bufio.Reader, w *bufio.Writer, cl *int64) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(line[len(contentLength):])), 10, 64)
			if err != nil || cl == nil && n != 0 {
				return errFloorBody
			}
			if cl != nil {
				*cl = n
			}
		}
		w.Write(line)
		if len(line) <= 2 {
			return nil
		}
	}
}
