package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// echo is what the backend answers: the request as it arrived here, after
// sluice's policy ran.
type echo struct {
	Service    string            `json:"service"`
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Query      string            `json:"query,omitempty"`
	Proto      string            `json:"proto"`
	Host       string            `json:"host"`
	RemoteAddr string            `json:"remote_addr"`
	Headers    map[string]string `json:"headers"`
	BodyBytes  int64             `json:"body_bytes"`
}

func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Drain the body so that clients sending one (h2spec does) get a
		// complete exchange and the connection can be reused.
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		e := echo{
			Service:    name,
			Method:     r.Method,
			Path:       r.URL.EscapedPath(),
			Query:      r.URL.RawQuery,
			Proto:      r.Proto,
			Host:       r.Host,
			RemoteAddr: r.RemoteAddr,
			Headers:    map[string]string{},
			BodyBytes:  n,
		}
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e.Headers[k] = strings.Join(r.Header[k], ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e)
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	name := flag.String("name", "quickstart-backend", "service name echoed in every answer")
	flag.Parse()

	srv := &http.Server{
		Addr:              *listen,
		Handler:           handler(*name),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("backend: listening on http://%s", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("backend: %v", err)
	}
}
