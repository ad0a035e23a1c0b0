package ticks

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Tick is one stored tick: the quote as the feed published it, and the
// stream entry it came from.
type Tick struct {
	// Symbol is the currency pair, e.g. "EURUSD".
	Symbol string `json:"symbol"`
	// Bid and Ask are the prices exactly as published: the float64 that the
	// feed's decimal text parses to.
	Bid float64 `json:"bid"`
	Ask float64 `json:"ask"`
	// Time is when the quote was made at its source, to the nanosecond.
	Time time.Time `json:"time"`
	// Published is when the feed published the tick; zero if unknown.
	Published time.Time `json:"published,omitzero"`
	// Stream is the key of the tick stream the tick was read from.
	Stream string `json:"-"`
	// ID is the tick's stream entry ID, "<ms>-<seq>". Stream and ID
	// identify a tick: a store keeps one tick per pair.
	ID string `json:"-"`
}

// Store keeps ticks. Implementations: ClickHouse (clickhouse.go) and SQLite
// (sqlite.go), both under the conformance suite in tickstest. A Store is
// safe for concurrent use, also by several processes on one database.
type Store interface {
	// Write stores ticks. It is idempotent: a tick whose Stream and ID are
	// stored already is not stored again, so a batch may be written again
	// after a failure, or by a second recorder. It stores nothing when a
	// tick is invalid (see Tick.Validate).
	Write(ctx context.Context, ticks []Tick) error
	// Last returns the highest entry ID written for stream (IDs compare as
	// numbers), where a recorder resumes; "" when none was. Retention does
	// not lower it: a recorder never records dropped days again.
	Last(ctx context.Context, stream string) (string, error)
	// Ticks returns the first page of q's ticks, oldest first by (Time,
	// Stream, ID), and the cursor of the next page, "" after the last one.
	Ticks(ctx context.Context, q TickQuery) (page []Tick, next string, err error)
	// Bars returns q's bars, oldest first; an interval without ticks has no
	// bar.
	Bars(ctx context.Context, q BarQuery) ([]Bar, error)
	// DropBefore removes every tick older than the start of t's UTC day.
	// Retention goes by whole days because ClickHouse keeps a day per
	// partition and drops whole partitions.
	DropBefore(ctx context.Context, t time.Time) error
	// Close releases the store's connections.
	Close() error
}

// Page sizes of TickQuery.
const (
	// DefaultLimit is the page size when TickQuery.Limit is 0.
	DefaultLimit = 1000
	// MaxLimit is the largest page: 50,000 ticks are about 3 MB of JSON,
	// and a day of a busy symbol is a few such pages.
	MaxLimit = 50_000
)

// TickQuery selects one symbol's ticks whose Time is in [From, To).
type TickQuery struct {
	// Symbol is the currency pair; required.
	Symbol string
	// From and To bound Time, From inclusive and To exclusive; both required.
	From, To time.Time
	// Limit is the most ticks in the page: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor is the next value of the previous page, to resume exactly after
	// its last tick (ticks of the same Time included); "" starts at From.
	// Pass the same Symbol, From and To with it.
	Cursor string
}

// Interval is the length of a bar.
type Interval string

// The intervals of Bars. Bars start at multiples of their length since the
// Unix epoch, which for all of these are whole minutes, hours and UTC days.
const (
	Minute         Interval = "1m"
	FiveMinutes    Interval = "5m"
	FifteenMinutes Interval = "15m"
	Hour           Interval = "1h"
	FourHours      Interval = "4h"
	Day            Interval = "1d"
)

// Intervals lists every Interval, shortest first.
var Intervals = []Interval{Minute, FiveMinutes, FifteenMinutes, Hour, FourHours, Day}

var intervalLengths = map[Interval]time.Duration{
	Minute:         time.Minute,
	FiveMinutes:    5 * time.Minute,
	FifteenMinutes: 15 * time.Minute,
	Hour:           time.Hour,
	FourHours:      4 * time.Hour,
	Day:            24 * time.Hour,
}

// Duration returns the interval's length, 0 for an unknown interval.
func (i Interval) Duration() time.Duration { return intervalLengths[i] }

// ParseInterval returns the Interval named s, e.g. "5m".
func ParseInterval(s string) (Interval, error) {
	if i := Interval(s); i.Duration() > 0 {
		return i, nil
	}
	return "", fmt.Errorf("interval %q: want one of %s", s, intervalList())
}

func intervalList() string {
	names := make([]string, len(Intervals))
	for i, iv := range Intervals {
		names[i] = string(iv)
	}
	return strings.Join(names, ", ")
}

// BarQuery selects one symbol's bars over the ticks whose Time is in
// [From, To). A bar at either end holds only the ticks inside the range, so
// From and To on the interval's boundaries give whole bars.
type BarQuery struct {
	// Symbol is the currency pair; required.
	Symbol string
	// Interval is the bars' length; required.
	Interval Interval
	// From and To bound the ticks' Time, From inclusive and To exclusive.
	From, To time.Time
}

// Bar summarises the ticks of one interval.
type Bar struct {
	// Start is when the interval starts; it ends one Interval later.
	Start time.Time `json:"start"`
	// Bid and Ask are the OHLC of each side.
	Bid OHLC `json:"bid"`
	Ask OHLC `json:"ask"`
	// Ticks is how many ticks the bar summarises.
	Ticks int64 `json:"ticks"`
	// Spread summarises ask minus bid over those ticks.
	Spread Spread `json:"spread"`
}

// OHLC is the first, highest, lowest and last price of an interval, first
// and last in the order of TickQuery: by (Time, Stream, ID).
type OHLC struct {
	Open  float64 `json:"open"`
	High  float64 `json:"high"`
	Low   float64 `json:"low"`
	Close float64 `json:"close"`
}

// Spread is the least, greatest and mean spread (ask minus bid) of an
// interval; raw ticks include crossed quotes, so Min may be negative.
type Spread struct {
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// The range of tick times a store holds: from just after the Unix epoch
// (times are kept as Unix nanoseconds, and bars count from the epoch) to
// where Unix nanoseconds end in int64.
var (
	minTime = time.Unix(0, 1).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// Validate reports what makes t impossible to store, nil if nothing does.
func (t *Tick) Validate() error {
	switch {
	case t.Symbol == "":
		return errors.New("no symbol")
	case t.Stream == "":
		return errors.New("no stream name")
	case math.IsNaN(t.Bid) || math.IsInf(t.Bid, 0) || math.IsNaN(t.Ask) || math.IsInf(t.Ask, 0):
		return fmt.Errorf("bid %v, ask %v: prices must be finite numbers", t.Bid, t.Ask)
	case t.Time.Before(minTime) || t.Time.After(maxTime):
		return fmt.Errorf("time %s: want a time after %s and before %s",
			t.Time.Format(time.RFC3339Nano), minTime.Format(time.RFC3339Nano), maxTime.Format(time.RFC3339))
	case !t.Published.IsZero() && (t.Published.Before(minTime) || t.Published.After(maxTime)):
		return fmt.Errorf("published %s: want zero (unknown) or a time after %s and before %s",
			t.Published.Format(time.RFC3339Nano), minTime.Format(time.RFC3339Nano), maxTime.Format(time.RFC3339))
	}
	if _, err := parseID(t.ID); err != nil {
		return err
	}
	return nil
}

// validate checks every tick of a batch, naming the first bad one.
func validate(ticks []Tick) error {
	for i := range ticks {
		if err := ticks[i].Validate(); err != nil {
			return fmt.Errorf("ticks: tick %d of %d (stream %q, entry %q, symbol %q): %w; nothing of the batch was stored",
				i+1, len(ticks), ticks[i].Stream, ticks[i].ID, ticks[i].Symbol, err)
		}
	}
	return nil
}

// entryID is a stream entry ID as two numbers, which is how the stores keep
// it: IDs order numerically ("9-0" comes before "10-0").
type entryID struct{ ms, seq uint64 }

// parseID parses "<ms>-<seq>". Both parts must fit an int64, because SQLite
// integers are signed; Redis makes the first from its clock in milliseconds
// and the second counts entries within one, so real IDs are far below that.
func parseID(s string) (entryID, error) {
	a, b, found := strings.Cut(s, "-")
	ms, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	if !found || err1 != nil || err2 != nil || ms < 0 || seq < 0 || strings.HasPrefix(a, "+") || strings.HasPrefix(b, "+") {
		return entryID{}, fmt.Errorf("entry ID %q: want <ms>-<seq>, two numbers below 2^63 as Redis makes them", s)
	}
	return entryID{uint64(ms), uint64(seq)}, nil
}

func (e entryID) String() string {
	var b [41]byte
	out := strconv.AppendUint(b[:0], e.ms, 10)
	out = append(out, '-')
	out = strconv.AppendUint(out, e.seq, 10)
	return string(out)
}

func (e entryID) compare(o entryID) int {
	return cmp.Or(cmp.Compare(e.ms, o.ms), cmp.Compare(e.seq, o.seq))
}

// position is where a tick sits in the order of TickQuery.
type position struct {
	timeNs int64
	stream string
	id     entryID
}

// cursorVersion starts every cursor, so that a later format can tell old
// cursors apart.
const cursorVersion = "1"

// cursor encodes p for TickQuery.Cursor. It is opaque to clients, URL-safe,
// and holds the stream name last because that may contain anything.
func (p position) cursor() string {
	s := cursorVersion + "." + strconv.FormatInt(p.timeNs, 10) + "." + strconv.FormatUint(p.id.ms, 10) + "." +
		strconv.FormatUint(p.id.seq, 10) + "." + p.stream
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseCursor(c string) (position, error) {
	bad := fmt.Errorf("cursor %q is not one a page of ticks returned: pass the next value of the previous page unchanged, or none to start at From", c)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return position{}, bad
	}
	parts := strings.SplitN(string(raw), ".", 5)
	if len(parts) != 5 || parts[0] != cursorVersion || parts[4] == "" {
		return position{}, bad
	}
	var p position
	p.timeNs, err = strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return position{}, bad
	}
	if p.id, err = parseID(parts[2] + "-" + parts[3]); err != nil {
		return position{}, bad
	}
	p.stream = parts[4]
	return p, nil
}

// tickRange is a checked TickQuery.
type tickRange struct {
	symbol   string
	from, to int64 // Unix nanoseconds, [from, to)
	limit    int
	after    *position // nil: start at from
}

func (q TickQuery) check() (tickRange, error) {
	r := tickRange{symbol: q.Symbol, limit: cmp.Or(q.Limit, DefaultLimit)}
	if q.Symbol == "" {
		return r, errors.New("ticks: a symbol is required, e.g. EURUSD")
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return r, fmt.Errorf("ticks: limit %d: want 1 to %d ticks a page (0 means %d)", q.Limit, MaxLimit, DefaultLimit)
	}
	var err error
	if r.from, r.to, err = checkRange(q.From, q.To); err != nil {
		return r, err
	}
	if q.Cursor != "" {
		p, err := parseCursor(q.Cursor)
		if err != nil {
			return r, fmt.Errorf("ticks: %w", err)
		}
		r.after = &p
	}
	return r, nil
}

// barRange is a checked BarQuery.
type barRange struct {
	symbol   string
	step     int64 // the interval in nanoseconds
	from, to int64
}

func (q BarQuery) check() (barRange, error) {
	r := barRange{symbol: q.Symbol, step: int64(q.Interval.Duration())}
	if q.Symbol == "" {
		return r, errors.New("ticks: a symbol is required, e.g. EURUSD")
	}
	if r.step == 0 {
		return r, fmt.Errorf("ticks: bar interval %q: want one of %s", q.Interval, intervalList())
	}
	var err error
	r.from, r.to, err = checkRange(q.From, q.To)
	return r, err
}

// checkRange turns [from, to) into Unix nanoseconds, clamped to the times a
// store can hold.
func checkRange(from, to time.Time) (int64, int64, error) {
	if from.IsZero() || to.IsZero() {
		return 0, 0, fmt.Errorf("ticks: from %s and to %s: both are required", rfc3339(from), rfc3339(to))
	}
	if !from.Before(to) {
		return 0, 0, fmt.Errorf("ticks: from %s is not before to %s: the range [from, to) must not be empty", rfc3339(from), rfc3339(to))
	}
	return clamp(from), clamp(to), nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "(none)"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// dayStart returns the start of t's UTC day in Unix nanoseconds, clamped to
// what a store can hold.
func dayStart(t time.Time) int64 {
	y, m, d := t.UTC().Date()
	return clamp(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
}

// clamp returns t in Unix nanoseconds, moved into [minTime, maxTime].
func clamp(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	}
	return t.UnixNano()
}

// fromNanos turns stored Unix nanoseconds into a time; 0 is the zero time
// (an unknown publish time).
func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// toNanos is fromNanos's inverse.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
