// Package server is one tier's data-plane front door: the WebSocket stream at
// /v1/stream and the REST endpoints on the same port, with API-key
// authentication, connection limits and in-memory usage metering.
package server
