#!/usr/bin/env bash
# Turns the raw results of bench/bench.sh (results.tsv, rss.tsv, micro.txt
# in OUT) into docs/benchmarks.md. Kept apart from the measuring so the
# document can be regenerated from a saved run: bench/report.sh OUT DOC.
set -euo pipefail
out=$1 doc=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

[[ -s $out/results.tsv ]] || { echo "report.sh: no results in $out/results.tsv" >&2; exit 1; }
# Best round per target, protocol and size (first-seen order kept); peak
# RSS is the highest of all rounds.
results="$out/best.tsv"
awk -F'\t' -v OFS='\t' '{ k = $1 FS $2 FS $3
    if (!(k in best)) { order[++n] = k; best[k] = $0; rps[k] = $4 }
    else if ($4 + 0 > rps[k] + 0) { best[k] = $0; rps[k] = $4 } }
  END { for (i = 1; i <= n; i++) print best[order[i]] }' "$out/results.tsv" >"$results"
awk -F'\t' -v OFS='\t' '{ if (!($1 in m)) order[++n] = $1; if ($2 + 0 > m[$1] + 0) m[$1] = $2 }
  END { for (i = 1; i <= n; i++) print order[i], m[order[i]] }' "$out/rss.tsv" >"$out/rss-best.tsv"

ver() { if command -v "$1" >/dev/null 2>&1; then "$@" 2>&1 | head -n1; else echo "(not found)"; fi; }
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cores=$(getconf _NPROCESSORS_ONLN)
mem=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -sr)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)

# table: one row per measurement, req/s relative to nginx's row of the same
# protocol and body size.
table=$(awk -F'\t' '
  $1 == "sluice-nopolicy" || $1 ~ /^vs-/ { next }  # only the overhead and side-by-side tables use them
  { n++; key[n] = $2 "/" $3; row[n] = $0; if ($1 == "nginx") ng[$2 "/" $3] = $4 }
  END {
    for (i = 1; i <= n; i++) {
      split(row[i], f, "\t")
      k = key[i]
      ratio = (k in ng && ng[k] > 0) ? sprintf("%.2f", f[4] / ng[k]) : "-"
      size = (f[3] == "1k") ? "1 KiB" : "1 MiB"
      proto = (f[2] == "h1") ? "HTTP/1.1" : "h2 (TLS)"
      printf "| %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", f[1], proto, size, f[4], f[5], f[6], ratio, (f[8] == "" ? "-" : f[8]), f[7]
    }
  }' "$results")

rss=$(awk -F'\t' '{printf "| %s | %.1f |\n", $1, $2 / 1024}' "$out/rss-best.tsv")

# median(" a b c"): the median of a space-separated list (leading space).
awk_median='
  function median(s,   a, n, i, j, t) {
    n = split(substr(s, 2), a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
'

# Policy overhead: sluice+policy5 vs sluice, same protocol, 1 KiB, from
# the runs of each round (they alternate in one process, ABBA), then the
# median over rounds; the CPU cost per request is the steadier figure.
overhead=$(awk -F'\t' "$awk_median"'
  # A round has two runs of each (without, with, with, without): their mean.
  $3 == "1k" && $1 == "sluice-nopolicy" { bs[$2, $9] += $4; bn[$2, $9]++; bcs[$2, $9] += $8 }
  $3 == "1k" && $1 == "sluice+policy5" { ps[$2, $9] += $4; pn[$2, $9]++; pcs[$2, $9] += $8; protos[$2] = 1; rounds[$9] = 1 }
  END {
    for (k in bn) { base[k] = bs[k] / bn[k]; bcpu[k] = bcs[k] / bn[k] }
    for (k in pn) { pol[k] = ps[k] / pn[k]; pcpu[k] = pcs[k] / pn[k] }
    for (p in protos) {
      rt = ""; ct = ""; b = ""; w = ""; bc = ""; wc = ""
      for (r in rounds) if (base[p, r] > 0 && pol[p, r] > 0) {
        rt = rt " " (base[p, r] / pol[p, r] - 1) * 100
        b = b " " base[p, r]; w = w " " pol[p, r]
        if (bcpu[p, r] + 0 > 0 && pcpu[p, r] + 0 > 0) {
          ct = ct " " (pcpu[p, r] / bcpu[p, r] - 1) * 100; bc = bc " " bcpu[p, r]; wc = wc " " pcpu[p, r]
        }
      }
      if (rt == "") continue
      proto = (p == "h1") ? "HTTP/1.1" : "h2 (TLS)"
      printf "| %s | %d | %d | %+.1f%% | %s | %s |\n", proto, median(b), median(w), median(rt),
        (bc == "" ? "-" : sprintf("%.1f -> %.1f", median(bc), median(wc))), (ct == "" ? "-" : sprintf("%+.1f%%", median(ct)))
    }
  }' "$out/results.tsv" | sort)

# Side by side: sluice and nginx running at once, measured in turn (ABBA)
# in every round; per round the mean of each one's two runs, the ratio of
# those, then the median over rounds.
# sidebyside A B NAME: the table's rows for A against the nginx measured
# alongside it (B).
sidebyside() { awk -F'\t' -v A="$1" -v B="$2" -v name="$3" "$awk_median"'
  $1 == A || $1 == B {
    k = $1 SUBSEP $2 SUBSEP $9
    rps[k] += $4; p99[k] += $6; cpu[k] += $8; n[k]++; protos[$2] = 1; rounds[$9] = 1
  }
  END {
    for (p in protos) {
      rr = ""; pr = ""; sr = ""; nr = ""; sp = ""; np = ""; sc = ""; nc = ""; each = ""
      for (r = 1; r <= 99; r++) {
        if (!(r in rounds)) continue
        ks = A SUBSEP p SUBSEP r; kn = B SUBSEP p SUBSEP r
        if (!(n[ks] > 0 && n[kn] > 0 && rps[kn] > 0)) continue
        s1 = rps[ks] / n[ks]; n1 = rps[kn] / n[kn]
        rr = rr " " s1 / n1; each = each sprintf(" %.2f", s1 / n1)
        sr = sr " " s1; nr = nr " " n1
        sp = sp " " p99[ks] / n[ks]; np = np " " p99[kn] / n[kn]
        if (p99[kn] > 0) pr = pr " " (p99[ks] / n[ks]) / (p99[kn] / n[kn])
        sc = sc " " cpu[ks] / n[ks]; nc = nc " " cpu[kn] / n[kn]
      }
      if (rr == "") continue
      proto = (p == "h1") ? "HTTP/1.1" : "h2 (TLS)"
      printf "| %s | %s | %d | %d | **%.2f** (%s) | %.2f / %.2f | %.2f | %.1f / %.1f |\n", name, proto, median(sr), median(nr),
        median(rr), substr(each, 2), median(sp), median(np), (pr == "" ? 0 : median(pr)), median(sc), median(nc)
    }
  }' "$out/results.tsv" | sort; }
versus=$(sidebyside vs-sluice vs-nginx sluice; sidebyside vs-floor vs-nginx-f "Go floor"; sidebyside vs-evfloor vs-nginx-e "Go event-loop floor")

{
  cat <<EOF
# Benchmarks

Generated by \`make bench\` (\`bench/bench.sh\`, then \`bench/report.sh\`) on
$(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$commit\`$dirty. Re-run \`make bench\` to refresh
this file; it is rewritten whole. Loopback only; total run time is a few
minutes.

## Machine

| | |
|---|---|
| CPU | $cpu, $cores cores (shared by load generator, proxy and backend) |
| memory | $mem |
| kernel | $kernel |
| Go | $(ver go version) |
| sluice | $(ver bin/sluice version) |
| nginx | $(ver nginx -v) |
| Caddy | $(ver caddy version) |
| wrk | $(ver wrk -v) |
| h2load | $(ver h2load --version) |

## Method

- **One fixed backend** for every row: nginx with one worker serving two
  static files (\`/1k\`, \`/1m\`) with sendfile and \`keepalive_requests\`
  high enough that proxies' pooled connections are never recycled
  (\`bench/nginx-backend.conf\`). It answers much faster than any proxy in
  front of it; the \`direct\` rows show its ceiling on this machine.
- **\`nethttp\` is not a proxy**: Go's \`net/http\` answering 1 KiB
  itself (\`bin/benchkit serve\`), over HTTP/1.1 and over h2 with TLS.
  Its h2 server is the \`x/net/http2\` one sluice uses, so its h2 row is a
  floor under sluice's h2 rows: what Go's h2 server costs before any
  proxying.
- **Each proxy runs alone**: started, warmed up (${WARM:-2} s per protocol), measured (${DUR:-6} s per row), stopped.
  This repeats for ${ROUNDS:-3} rounds, targets interleaved; each row shows
  the round with the most req/s, so a burst of unrelated load on the
  machine costs a target one round, not its result.
  Peak RSS is its \`VmHWM\` from \`/proc/PID/status\` at the end of its
  runs (nginx: master + workers summed, which counts shared pages more
  than once, so nginx's figure is an upper bound).
- **Configs** as people run them in production: \`bench/sluice.yaml\`;
  \`bench/nginx-proxy.conf\` (\`worker_processes auto\`, upstream
  \`keepalive 64\`, \`proxy_http_version 1.1\`, \`proxy_set_header Connection ""\`,
  \`proxy_max_temp_file_size 0\` so 1 MiB answers stream instead of
  spooling to disk); \`bench/Caddyfile\` (\`reverse_proxy\` defaults). No
  access logs anywhere. TLS rows use one self-signed ECDSA P-256 pair.
- **No CPU pinning.** With 2 cores, pinning the proxy to one core and the
  load generator to the other would cap nginx's two workers and Go's two Ps
  alike and leave the backend to fight wrk; all processes share both cores
  instead, the same way for every proxy. Compare ratios, not absolute
  numbers, across machines.
- **Commands** (ports are picked free at run time):

\`\`\`
wrk -t2 -c64 -d${DUR:-6}s --timeout 10s --latency -H 'X-Bench: 1' http://127.0.0.1:PORT/1k     # and /1m
h2load -t2 -c64 -m10 -D ${DUR:-6} -H 'X-Bench: 1' --log-file=LOG https://127.0.0.1:TLS_PORT/1k
h2load -t2 -c64 -m10 -n 1280 -H 'X-Bench: 1' --log-file=LOG https://127.0.0.1:TLS_PORT/1m   # counted: timed mode can hang on large bodies
go test -run='^\$' -bench=. -benchmem ./proxy/ ./policy/...
\`\`\`

  h2load reports no percentiles; p50/p99 are computed from its per-request
  log. "errors" counts non-2xx answers plus socket errors (wrk) or
  failed/errored requests (h2load); a row with errors is not comparable.

## Results

"vs nginx" is req/s divided by nginx's req/s for the same protocol and size.
On this shared 2-core machine, repeated runs of the same row differ by
10-20% (more while other work runs); read differences smaller than that as
noise, including a policy "overhead" below zero. "cpu µs/req" is the
CPU time (user + system) the target's processes used per request during
the row's run: what a request costs the proxy itself, much steadier than
req/s when other load shares the machine. At 1 MiB the proxies are
bound by copying bytes, and nginx's default \`proxy_buffering\` adds a
copy through its buffers that the streaming proxies (sluice, Caddy) skip.

| target | protocol | body | req/s | p50 ms | p99 ms | vs nginx | cpu µs/req | errors |
|---|---|---|---:|---:|---:|---:|---:|---:|
$table

Peak memory over all of a proxy's runs:

| proxy | peak RSS MiB |
|---|---:|
$rss

## sluice and nginx side by side

The rows above measure each proxy alone, minutes apart; on this shared
machine the load drifts over minutes, and a row's req/s with it. Here
sluice (\`bench/sluice.yaml\`) and nginx (\`bench/nginx-proxy.conf\`) run at
the same time on their own ports and are measured in turn, sluice, nginx,
nginx, sluice, each run half as long as the rows above, 1 KiB answers. A
round's ratio is sluice's mean req/s over nginx's; the table shows the
median over rounds (each round's ratio in brackets), and the medians of
p99 latency and CPU per request.

The "Go floor" rows measure \`benchkit floor\` (bench/benchkit/floor.go)
the same way against the same nginx, HTTP/1.1 only: a goroutine per
client connection, each with its own upstream connection, heads copied
line by line, nothing else (no header handling, timeouts, pooling,
metrics or policy). It is no usable proxy; it shows how close to nginx
any goroutine-per-connection Go proxy gets on this machine, the Go
runtime's own cost (scheduler, netpoller, syscall entry) included.

The "Go event-loop floor" rows measure \`benchkit evfloor\`
(bench/benchkit/evfloor_linux.go) the same way: the same copying, but
built as nginx's workers are, one epoll loop per P on a locked thread
with its own \`SO_REUSEPORT\` listener, no goroutine per connection. The
difference between the two floors is what the goroutine model's two
wake-ups per proxied request (the answer, then the next request) cost on
this machine.

| proxy | protocol | its req/s | nginx req/s | req/s ratio (rounds) | p99 ms it / nginx | p99 ratio | cpu µs/req it / nginx |
|---|---|---:|---:|---:|---:|---:|---:|
$versus

## Policy overhead

One sluice process (\`bench/sluice-policy5.yaml\`) serves the backend on
endpoints without a policy and with \`bench/policy5.yaml\` (five rules:
path, header and IP conditions; add-headers and url-rewrite actions; four
match every request); wrk and h2load alternate between the two, 1 KiB
answers, in every round: without, with, with, without, each run half as
long as the other rows', so that a drift of the machine's load weighs on
both sides alike. A round's figure is the mean of its two runs of each;
the table shows the median over rounds. "time per request added" is implied by the
req/s drop (without / with - 1); "CPU added" compares the CPU the process
spent per request with and without the policy, the steadier figure on a
shared machine. \`BenchmarkPolicy5\` below is the engine's own share.

| protocol | req/s without | req/s with policy5 | time per request added | cpu µs/req without -> with | CPU added |
|---|---:|---:|---:|---|---:|
$overhead

## Go micro-benchmarks

\`go test -run='^\$' -bench=. -benchmem ./proxy/ ./policy/...\`, same run:

\`\`\`
$(grep -vE '^(goos|goarch|cpu):' "$out/micro.txt" 2>/dev/null || echo "(none)")
\`\`\`
EOF
} >"$doc"
