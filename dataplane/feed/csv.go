package feed

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// Header is the column line of a tick file. It is optional; when present it
// must be exactly these columns in this order.
const Header = "ts,symbol,bid,ask"

// Reason says why a row of a tick file was skipped.
type Reason uint8

const (
	// WrongFieldCount: the row does not have exactly four comma-separated fields.
	WrongFieldCount Reason = iota
	// BadTimestamp: ts is not an RFC 3339 time with a zone, e.g. 2014-05-08T11:45:00.041Z.
	BadTimestamp
	// BadSymbol: symbol is not six uppercase letters.
	BadSymbol
	// BadPrice: bid or ask is not a decimal number (see market.ParsePrice),
	// or is larger in magnitude than market.MaxPrice, which no quote is.
	BadPrice
	// OutOfOrder: ts is earlier than the previous good row's; replay paces by
	// the gaps between rows, so a row from the past cannot be placed.
	OutOfOrder
	// LineTooLong: the line is longer than any real row could be (64 KiB).
	LineTooLong

	numReasons
)

var reasonNames = [numReasons]string{
	WrongFieldCount: "wrong_field_count",
	BadTimestamp:    "bad_timestamp",
	BadSymbol:       "bad_symbol",
	BadPrice:        "bad_price",
	OutOfOrder:      "out_of_order",
	LineTooLong:     "line_too_long",
}

// String returns the reason's snake_case name, as used in metrics and logs.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText makes Stats.Skipped encode as {"bad_price": 3} in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Stats counts what a Reader has read so far.
type Stats struct {
	// Rows is the number of data rows read, good and bad; the header and
	// blank lines are not rows.
	Rows int64 `json:"rows"`
	// Ticks is the number of rows returned as ticks.
	Ticks int64 `json:"ticks"`
	// Skipped counts malformed rows by reason; only reasons seen appear.
	Skipped map[Reason]int64 `json:"skipped,omitempty"`
}

// SkippedTotal is the number of rows skipped for any reason.
func (s Stats) SkippedTotal() int64 {
	var n int64
	for _, c := range s.Skipped {
		n += c
	}
	return n
}

// String summarises the counts, e.g. "rows=10 ticks=8 bad_price=2".
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rows=%d ticks=%d", s.Rows, s.Ticks)
	reasons := make([]Reason, 0, len(s.Skipped))
	for r := range s.Skipped {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return reasons[i] < reasons[j] })
	for _, r := range reasons {
		fmt.Fprintf(&b, " %s=%d", r, s.Skipped[r])
	}
	return b.String()
}

// maxInterned bounds the symbol intern table, so a file of garbage symbols
// costs allocations, not unbounded memory.
const maxInterned = 4096

// Reader reads ticks from a CSV file of ts,symbol,bid,ask rows, plain or
// gzip-compressed (recognised by its magic bytes, whatever the file is
// called).
//
// A malformed row never stops the Reader: it is counted by reason (see Stats
// and OnSkip) and skipped, because one bad line in a day of recorded quotes
// should cost one tick, not the day. Non-positive and crossed prices are not
// malformed: they are well-formed rows of bad data, and judging them is the
// quality filter's job, so they are returned.
//
// Reading is allocation-free per row in the common case: timestamps and
// prices are parsed from the read buffer, and symbols are interned.
type Reader struct {
	// OnSkip, if set, is called for every skipped row with its 1-based line
	// number, the reason and the row's text (valid only during the call).
	OnSkip func(line int64, reason Reason, row []byte)

	br      *bufio.Reader
	pending []byte // a first line read while looking for the header
	line    int64
	lastNs  int64
	haveTS  bool
	rows    int64
	ticks   int64
	skipped [numReasons]int64
	symbols map[string]string
}

const readBufferSize = 64 << 10

// NewReader returns a Reader of r. It reads the first line to recognise the
// compression and the header, so a file that is not a tick file at all fails
// here, with the line it found.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, readBufferSize)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("feed: gzip header: %w", err)
		}
		br = bufio.NewReaderSize(gz, readBufferSize)
	}
	rd := &Reader{br: br, symbols: make(map[string]string)}
	if err := rd.readHeader(); err != nil {
		return nil, err
	}
	return rd, nil
}

// readHeader consumes the header if the first non-blank line is one. A line
// that starts with a digit is a row (the file has no header) and is kept for
// the first Read.
func (r *Reader) readHeader() error {
	for {
		line, err := r.readLine()
		if len(line) == 0 {
			if err != nil {
				if err == io.EOF {
					return nil // empty file: no ticks, no error
				}
				return err
			}
			continue
		}
		if line[0] >= '0' && line[0] <= '9' {
			r.pending = append([]byte(nil), line...)
			return nil
		}
		got := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(string(line), "\ufeff")))
		if strings.ReplaceAll(got, " ", "") != Header {
			return fmt.Errorf("feed: line %d: header %q is not %q: the columns must be the quote time, symbol, bid and ask in that order",
				r.line, line, Header)
		}
		return nil
	}
}

// readLine returns the next line without its line ending. At the end of the
// input it returns the last line with io.EOF (or an empty line and io.EOF).
func (r *Reader) readLine() ([]byte, error) {
	if r.pending != nil {
		line := r.pending
		r.pending = nil
		return line, nil
	}
	line, err := r.br.ReadSlice('\n')
	r.line++
	if err == bufio.ErrBufferFull {
		// Skip the rest of the monster line and report it as one row.
		for err == bufio.ErrBufferFull {
			_, err = r.br.ReadSlice('\n')
		}
		r.rows++
		r.skip(LineTooLong, nil)
		if err != nil && err != io.EOF {
			return nil, err
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		return r.readLine()
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, err
}

// Read returns the next good tick, skipping and counting malformed rows. It
// returns io.EOF after the last row; any other error is from the underlying
// reader or the gzip stream (a truncated file, say).
func (r *Reader) Read() (market.Tick, error) {
	for {
		line, err := r.readLine()
		if err != nil && err != io.EOF {
			// A partial line before a read error is not trusted: a row cut
			// short can still parse, with a truncated price.
			return market.Tick{}, fmt.Errorf("feed: line %d: %w", r.line, err)
		}
		if len(line) > 0 {
			r.rows++
			t, reason, ok := r.parse(line)
			if ok {
				r.ticks++
				return t, nil
			}
			r.skip(reason, line)
		}
		if err == io.EOF {
			return market.Tick{}, io.EOF
		}
	}
}

func (r *Reader) skip(reason Reason, row []byte) {
	r.skipped[reason]++
	if r.OnSkip != nil {
		r.OnSkip(r.line, reason, row)
	}
}

// parse turns one row into a tick. It does not allocate unless the symbol is
// new or a price needs the slow path.
func (r *Reader) parse(line []byte) (market.Tick, Reason, bool) {
	var fields [4][]byte
	n := 0
	for {
		i := bytes.IndexByte(line, ',')
		if n == 3 || i < 0 {
			if n != 3 || i >= 0 {
				return market.Tick{}, WrongFieldCount, false
			}
			fields[3] = line
			break
		}
		fields[n] = line[:i]
		line = line[i+1:]
		n++
	}
	sec, nsec, ok := parseTime(fields[0])
	if !ok {
		return market.Tick{}, BadTimestamp, false
	}
	if !wellFormedSymbol(fields[1]) {
		return market.Tick{}, BadSymbol, false
	}
	bid, ok := market.ParsePrice(fields[2])
	if !ok {
		return market.Tick{}, BadPrice, false
	}
	ask, ok := market.ParsePrice(fields[3])
	if !ok {
		return market.Tick{}, BadPrice, false
	}
	ns := sec*1e9 + int64(nsec)
	if r.haveTS && ns < r.lastNs {
		return market.Tick{}, OutOfOrder, false
	}
	r.lastNs, r.haveTS = ns, true
	return market.Tick{
		Symbol: r.intern(fields[1]),
		Bid:    bid,
		Ask:    ask,
		Time:   time.Unix(sec, int64(nsec)).UTC(),
	}, 0, true
}

func (r *Reader) intern(b []byte) string {
	if s, ok := r.symbols[string(b)]; ok { // no allocation: the compiler special-cases this lookup
		return s
	}
	s := string(b)
	if len(r.symbols) < maxInterned {
		r.symbols[s] = s
	}
	return s
}

func wellFormedSymbol(b []byte) bool {
	if len(b) != 6 {
		return false
	}
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats {
	s := Stats{Rows: r.rows, Ticks: r.ticks}
	for reason, n := range r.skipped {
		if n > 0 {
			if s.Skipped == nil {
				s.Skipped = make(map[Reason]int64)
			}
			s.Skipped[Reason(reason)] = n
		}
	}
	return s
}

// ReadAll reads every tick of r into memory.
func ReadAll(r io.Reader) ([]market.Tick, Stats, error) {
	rd, err := NewReader(r)
	if err != nil {
		return nil, Stats{}, err
	}
	ticks, err := rd.ReadAll()
	return ticks, rd.Stats(), err
}

// ReadAll reads the rest of the ticks into memory. At the end of the input
// it returns them with a nil error; on a read error, those read so far and
// the error.
func (r *Reader) ReadAll() ([]market.Tick, error) {
	var ticks []market.Tick
	for {
		t, err := r.Read()
		if errors.Is(err, io.EOF) {
			return ticks, nil
		}
		if err != nil {
			return ticks, err
		}
		ticks = append(ticks, t)
	}
}

// ReadFile reads every tick of the named file, plain or gzip, into memory.
func ReadFile(path string) ([]market.Tick, Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("feed: %w", err)
	}
	defer f.Close()
	ticks, stats, err := ReadAll(f)
	if err != nil {
		return ticks, stats, fmt.Errorf("%s: %w", path, err)
	}
	return ticks, stats, nil
}
