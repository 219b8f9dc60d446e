// Package certs serves TLS certificates from PEM files to sluice's TLS
// listeners: a Store loads a set of cert/key pairs, picks one per handshake
// by SNI (exact name, then wildcard, then the first pair as default) and
// reloads all of them when any file changes. A reload is all-or-nothing: a
// missing, half-written or mismatched file keeps the previous certificates
// and logs one error naming the file.
package certs
