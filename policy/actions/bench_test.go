package actions

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func BenchmarkWindowTake(b *testing.B) {
	tb := newWindowTable(time.Minute, 1<<30, 0)
	defer tb.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tb.take(keys[i&1023])
			i++
		}
	})
}

func BenchmarkCompressBody(b *testing.B) {
	body := strings.Repeat(`{"id": 1, "title": "sunt aut facere repellat provident"},`, 2000)
	for _, c := range []string{"gzip", "br", "zstd"} {
		b.Run(c, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				cb := newCompressBody(io.NopCloser(strings.NewReader(body)), c)
				io.Copy(io.Discard, cb)
				cb.Close()
			}
		})
	}
}
