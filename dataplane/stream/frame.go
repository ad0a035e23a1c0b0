package stream

import (
	"encoding/binary"
	"errors"
	"syscall"
)

// A session writes its WebSocket frames itself, straight to the network
// connection: a server's frames are unmasked and uncompressed, so a frame is
// a 2- to 10-byte header and the payload, and a message built after a
// reserved header needs no copy to be written in one system call.

// WebSocket opcodes (RFC 6455, section 5.2) of the frames a session writes.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// maxHeader is the longest header of an unmasked frame; pooled messages
// reserve it in front of their payload.
const maxHeader = 10

// putHeader writes the header of a final, unmasked frame carrying n payload
// bytes so that it ends at b[maxHeader], and returns where it starts.
func putHeader(b []byte, opcode byte, n int) int {
	var start int
	switch {
	case n <= 125:
		start = maxHeader - 2
		b[start+1] = byte(n)
	case n <= 0xFFFF:
		start = maxHeader - 4
		b[start+1] = 126
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	default:
		start = 0
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[start] = 0x80 | opcode
	return start
}

// closePayload is a close frame's payload for code; 1005 (no status
// received) is never sent, so it is echoed as an empty payload.
func closePayload(code int) []byte {
	if code == 1005 || code <= 0 {
		return nil
	}
	return binary.BigEndian.AppendUint16(nil, uint16(code))
}

// rawWriter tries one non-blocking write on a connection's file descriptor.
// It lets the hub write a frame to a client that can take it without handing
// the frame to a goroutine: the common case, and the cheapest.
type rawWriter struct {
	conn syscall.RawConn
	fn   func(fd uintptr) bool // built once, so a write allocates nothing
	buf  []byte
	n    int
	err  error
}

func newRawWriter(c any) *rawWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{conn: rc}
	w.fn = func(fd uintptr) bool {
		for {
			n, err := syscall.Write(int(fd), w.buf)
			if err == syscall.EINTR {
				continue
			}
			w.n, w.err = max(n, 0), err
			return true // one attempt: never wait for the socket
		}
	}
	return w
}

// try writes what of b the socket takes now. A full socket is not an error:
// the caller writes the rest from a goroutine that may wait.
func (w *rawWriter) try(b []byte) (int, error) {
	w.buf = b
	if err := w.conn.Write(w.fn); err != nil {
		w.buf = nil
		return 0, err
	}
	n, err := w.n, w.err
	w.buf, w.err = nil, nil
	if errors.Is(err, syscall.EAGAIN) {
		err = nil
	}
	return n, err
}
