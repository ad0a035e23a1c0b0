package loadgen

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Tick is what the load tester needs of one tick object.
type Tick struct {
	// Symbol aliases the scanned message (or the Frame's scratch space when
	// the JSON string had escapes): it is valid until the next Scan.
	Symbol []byte
	// Seq is the tick's per-symbol sequence number; zero when absent.
	Seq uint64
	// PublishedUS is when the feed published the tick, in Unix
	// microseconds; zero when absent.
	PublishedUS int64
}

// Frame is what the load tester needs of one server message. One Frame is
// reused for every message of a connection so that scanning allocates
// nothing once its slices have grown to the largest message seen.
type Frame struct {
	// Type is the message's "type" (aliasing the message like Tick.Symbol).
	Type []byte
	// Seq is the frame's sequence number, valid when HasSeq.
	Seq    uint64
	HasSeq bool
	// Ticks holds the message's "ticks" array (market_data and snapshot).
	Ticks []Tick
	// Superseded and Dropped are the frame's filter_stats.
	Superseded uint64
	Dropped    uint64

	// scratch holds unescaped strings. When it grows, slices handed out
	// earlier keep pointing into the old array, which stays valid.
	scratch []byte
}

// SyntaxError says where and why a message could not be scanned.
type SyntaxError struct {
	// Offset is the byte offset in the message where scanning stopped.
	Offset int
	// Msg says what was expected there.
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
}

// notInteger explains a refused number: the fields the scanner reads are
// integers, and reading 1.5 or 1e3 as 1 would hide a protocol change.
const notInteger = "expected an integer in range"

// Scan reads msg, a JSON object, into f. It extracts "type", "seq", the
// "ticks" array (per tick "symbol", "seq" and "published_us") and
// "filter_stats"; every other field is skipped without being decoded. Keys
// may come in any order. It never panics on malformed input, and allocates
// only when f's slices must grow.
func (f *Frame) Scan(msg []byte) error {
	f.Type = f.Type[:0]
	f.Seq, f.HasSeq = 0, false
	f.Ticks = f.Ticks[:0]
	f.Superseded, f.Dropped = 0, 0
	f.scratch = f.scratch[:0]

	s := scanner{b: msg}
	if err := s.object(f, topLevel, nil); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.b) {
		return s.fail("unexpected data after the message")
	}
	return nil
}

// objectKind says which keys of an object matter.
type objectKind uint8

const (
	topLevel objectKind = iota
	tickObject
	filterStats
)

// scanner walks one message. Every method checks bounds before indexing, so
// that a truncated or hostile message yields an error, never a panic.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(msg string) error {
	return &SyntaxError{Offset: s.i, Msg: msg}
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.space()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.i >= len(s.b) {
			return s.fail("message ends early, expected " + string(c))
		}
		return s.fail("expected " + string(c))
	}
	s.i++
	return nil
}

// object scans one object, handing the keys kind cares about to their
// readers and skipping the rest. t is where a tickObject's fields go.
func (s *scanner) object(f *Frame, kind objectKind, t *Tick) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.fail("expected a key")
		}
		key, escaped, err := s.str()
		if err != nil {
			return err
		}
		if escaped {
			// A key is compared before its value is read and never kept, so
			// its unescaped bytes may sit past the scratch space's length,
			// to be overwritten by the next string.
			n := len(f.scratch)
			if f.scratch, err = unescape(f.scratch, key); err != nil {
				return s.fail(err.Error())
			}
			key = f.scratch[n:]
			f.scratch = f.scratch[:n]
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := s.field(f, kind, t, key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		case 0:
			return s.fail("message ends inside an object")
		default:
			return s.fail("expected , or } after a value")
		}
	}
}

// field reads the value of key in an object of kind.
func (s *scanner) field(f *Frame, kind objectKind, t *Tick, key []byte) error {
	var err error
	switch kind {
	case topLevel:
		switch string(key) {
		case "type":
			f.Type, err = s.stringValue(f)
		case "seq":
			f.Seq, err = s.uint()
			f.HasSeq = err == nil
		case "ticks":
			err = s.ticks(f)
		case "filter_stats":
			// A repeated key replaces the earlier value, as in encoding/json.
			f.Superseded, f.Dropped = 0, 0
			if s.peek() == '{' {
				err = s.object(f, filterStats, nil)
			} else {
				err = s.skip()
			}
		default:
			err = s.skip()
		}
	case tickObject:
		switch string(key) {
		case "symbol":
			t.Symbol, err = s.stringValue(f)
		case "seq":
			t.Seq, err = s.uint()
		case "published_us":
			t.PublishedUS, err = s.int()
		default:
			err = s.skip()
		}
	case filterStats:
		switch string(key) {
		case "superseded":
			f.Superseded, err = s.uint()
		case "dropped":
			f.Dropped, err = s.uint()
		default:
			err = s.skip()
		}
	}
	return err
}

// ticks reads an array of tick objects (or null) into f.Ticks.
func (s *scanner) ticks(f *Frame) error {
	f.Ticks = f.Ticks[:0] // a repeated key replaces the earlier value
	switch s.peek() {
	case 'n':
		return s.skip()
	case '[':
		s.i++
	default:
		return s.fail("ticks is not an array")
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		// Grow by append so the slice keeps its capacity across messages;
		// the new element is zeroed because append copies a zero Tick.
		f.Ticks = append(f.Ticks, Tick{})
		if err := s.object(f, tickObject, &f.Ticks[len(f.Ticks)-1]); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("expected , or ] after a tick")
		}
	}
}

// stringValue reads a string, unescaping it into f's scratch space if needed.
func (s *scanner) stringValue(f *Frame) ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.fail("expected a string")
	}
	raw, escaped, err := s.str()
	if err != nil || !escaped {
		return raw, err
	}
	n := len(f.scratch)
	if f.scratch, err = unescape(f.scratch, raw); err != nil {
		return nil, s.fail(err.Error())
	}
	return f.scratch[n:len(f.scratch):len(f.scratch)], nil
}

// str reads the string at s.i (which is '"') and returns its raw contents
// and whether they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	s.i++
	start := s.i
	// Strings here are short (keys, symbols, timestamps), so one plain
	// loop beats a vectorised search that has to be set up twice.
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			s.i++
			return s.b[start : s.i-1], false, nil
		}
		if c == '\\' {
			break
		}
		s.i++
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, nil
		case '\\':
			escaped = true
			s.i += 2
		default:
			s.i++
		}
	}
	s.i = len(s.b)
	return nil, false, s.fail("message ends inside a string")
}

// uint reads a non-negative integer.
func (s *scanner) uint() (uint64, error) {
	s.space()
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, s.fail(notInteger)
		}
		v = v*10 + d
		s.i++
	}
	if s.i == start || !s.numberEnds() {
		return 0, s.fail(notInteger)
	}
	return v, nil
}

// int reads an integer that may be negative.
func (s *scanner) int() (int64, error) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	u, err := s.uint()
	if err != nil {
		return 0, err
	}
	if neg {
		if u > 1<<63 {
			return 0, s.fail(notInteger)
		}
		return -int64(u), nil
	}
	if u > 1<<63-1 {
		return 0, s.fail(notInteger)
	}
	return int64(u), nil
}

// numberEnds reports whether the integer just read is followed by something
// that ends a value, so 1.5 and 1e3 are refused rather than read as 1.
func (s *scanner) numberEnds() bool {
	if s.i >= len(s.b) {
		return true
	}
	switch s.b[s.i] {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// skip passes over one value of any type without decoding it. Nested
// objects and arrays are skipped by counting brackets rather than by
// recursion, so a deeply nested message cannot exhaust the stack.
func (s *scanner) skip() error {
	switch s.peek() {
	case 0:
		return s.fail("message ends where a value was expected")
	case '"':
		_, _, err := s.str()
		return err
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, err := s.str(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			}
			s.i++
		}
		return s.fail("message ends inside a nested value")
	case ',', '}', ']', ':':
		return s.fail("expected a value")
	default:
		// A number or a literal: everything up to the next delimiter.
		for s.i < len(s.b) && !s.numberEnds() {
			s.i++
		}
		return nil
	}
}

// unescape appends the JSON string contents raw, with its escapes decoded,
// to dst.
func unescape(dst, raw []byte) ([]byte, error) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return dst, errors.New("string ends inside an escape")
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw[i+2:])
			if !ok {
				return dst, errors.New(`bad \u escape`)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// A surrogate pair is two escapes; a lone half decodes to
				// U+FFFD as encoding/json does.
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2, ok := hex4(raw[i+2:]); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							dst = utf8.AppendRune(dst, d)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, errors.New("unknown escape \\" + string(raw[i+1]))
		}
		i += 2
	}
	return dst, nil
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
