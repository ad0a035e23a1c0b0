// Package protocol defines the databridge streaming protocol (version
// databridge.v1): the JSON messages a client and a data plane exchange over
// the WebSocket at /v1/stream, their stable error codes and close codes.
// docs/asyncapi.yaml documents the same messages for client developers.
package protocol
