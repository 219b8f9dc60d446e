// Package exchange is sluice's own view of a connection, an HTTP request and
// its response: the data that the proxy hands to the policy engine, its
// actions and (later) Wasm plugins.
//
// It exists so that those consumers never touch *http.Request or any other
// transport type: the proxy fills an Exchange from whatever engine parsed the
// bytes (net/http today, a leaner HTTP/1.1 engine or a tunnel stream
// tomorrow) and turns it back into bytes on the wire. Header maps use
// http.Header only as a plain map type with canonical keys.
package exchange
