// Package testcert makes throw-away TLS certificates for tests: self-signed
// ECDSA P-256 leaf certificates that are also their own CA, so a test
// client can trust exactly one of them. It depends on the standard library
// only, so any package's tests may use it.
package testcert
