// Package tickstest is the conformance suite that every ticks.Store passes,
// and the recorded days it loads, read independently of the feed's parser.
package tickstest

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/internal/ticks"
)

// Row is one row of a recording as its file has it.
type Row struct {
	Time     time.Time
	Symbol   string
	Bid, Ask string // the decimal text of the file
}

// ReadRows reads the rows of a recording (gzip CSV, ts,symbol,bid,ask) with
// the standard library alone, so that what the suite expects does not come
// from the code under test.
func ReadRows(tb testing.TB, path string) []Row {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	r := csv.NewReader(gz)
	r.ReuseRecord = true
	var rows []Row
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("%s line %d: %v", path, line, err)
		}
		if line == 1 && rec[0] == "ts" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, rec[0])
		if err != nil {
			tb.Fatalf("%s line %d: %v", path, line, err)
		}
		rows = append(rows, Row{Time: ts.UTC(), Symbol: rec[1], Bid: rec[2], Ask: rec[3]})
	}
	return rows
}

// Recording returns the ticks of the named recording in testdata/fx (see
// feedtest), as a recorder reading them from stream would store them: each
// with an entry ID that Redis could have given it (the milliseconds of its
// time, and a sequence within them) and published a millisecond after its
// time. Prices are the file's decimal text parsed by strconv.
func Recording(tb testing.TB, name, stream string) []ticks.Tick {
	tb.Helper()
	rows := ReadRows(tb, feedtest.Recording(tb, name))
	out := make([]ticks.Tick, len(rows))
	var lastMs, seq int64 = -1, 0
	for i, r := range rows {
		bid, err1 := strconv.ParseFloat(r.Bid, 64)
		ask, err2 := strconv.ParseFloat(r.Ask, 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("%s row %d: prices %q, %q", name, i+1, r.Bid, r.Ask)
		}
		ms := r.Time.UnixMilli()
		if ms == lastMs {
			seq++
		} else {
			lastMs, seq = ms, 0
		}
		out[i] = ticks.Tick{Symbol: r.Symbol, Bid: bid, Ask: ask, Time: r.Time, Published: r.Time.Add(time.Millisecond),
			Stream: stream, ID: fmt.Sprintf("%d-%d", ms, seq)}
	}
	return out
}

// Open returns a new, empty store for one test and closes it (and removes
// what it made) when the test ends.
type Open func(t *testing.T) ticks.Store

// Run runs the conformance suite against the stores that open makes.
func Run(t *testing.T, open Open) {
	t.Run("RecordingRoundTrip", func(t *testing.T) { testRecording(t, open) })
	t.Run("WriteIsIdempotent", func(t *testing.T) { testIdempotent(t, open) })
	t.Run("Last", func(t *testing.T) { testLast(t, open) })
	t.Run("InvalidTicksStoreNothing", func(t *testing.T) { testInvalid(t, open) })
	t.Run("PagingThroughTies", func(t *testing.T) { testTies(t, open) })
	t.Run("QueryErrors", func(t *testing.T) { testQueryErrors(t, open) })
	t.Run("RetentionBoundary", func(t *testing.T) { testRetention(t, open) })
	t.Run("BarsAtTheEdges", func(t *testing.T) { testBarEdges(t, open) })
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// write stores ts in batches of n, as a recorder would.
func write(t *testing.T, s ticks.Store, ts []ticks.Tick, n int) {
	t.Helper()
	for start := 0; start < len(ts); start += n {
		if err := s.Write(ctx(t), ts[start:min(start+n, len(ts))]); err != nil {
			t.Fatalf("write ticks %d..: %v", start, err)
		}
	}
}

// readAll pages through q with pages of limit and returns every tick, failing
// the test when a page is longer than limit, or shorter but not the last.
func readAll(t *testing.T, s ticks.Store, q ticks.TickQuery, limit int) ([]ticks.Tick, int) {
	t.Helper()
	q.Limit = limit
	var all []ticks.Tick
	pages := 0
	for {
		page, next, err := s.Ticks(ctx(t), q)
		if err != nil {
			t.Fatalf("page %d of %s ticks: %v", pages+1, q.Symbol, err)
		}
		pages++
		if len(page) > limit || next != "" && len(page) != limit {
			t.Fatalf("page %d has %d ticks and next %q: want full pages of %d until the last", pages, len(page), next, limit)
		}
		all = append(all, page...)
		if next == "" {
			return all, pages
		}
		if pages > 10_000_000/limit {
			t.Fatalf("more than %d pages: the cursor does not move on", pages)
		}
		q.Cursor = next
	}
}

// order is the order of ticks.TickQuery: (Time, Stream, ID), IDs as numbers.
func order(a, b ticks.Tick) int {
	return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Stream, b.Stream), compareIDs(a.ID, b.ID))
}

func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return cmp.Or(cmp.Compare(am, bm), cmp.Compare(as, bs))
}

func splitID(id string) (uint64, uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseUint(a, 10, 64)
	seq, _ := strconv.ParseUint(b, 10, 64)
	return ms, seq
}

// sameTick reports whether a and b are the same tick, prices to the bit.
func sameTick(a, b ticks.Tick) bool {
	return a.Symbol == b.Symbol && math.Float64bits(a.Bid) == math.Float64bits(b.Bid) &&
		math.Float64bits(a.Ask) == math.Float64bits(b.Ask) && a.Time.Equal(b.Time) && a.Published.Equal(b.Published) &&
		a.Published.IsZero() == b.Published.IsZero() && a.Stream == b.Stream && a.ID == b.ID
}

// checkTicks fails unless got is want, tick for tick.
func checkTicks(t *testing.T, what string, got, want []ticks.Tick) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !sameTick(got[i], want[i]) {
			t.Fatalf("%s: tick %d is %+v, want %+v", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d ticks, want %d", what, len(got), len(want))
	}
}

func of(ts []ticks.Tick, symbol string) []ticks.Tick {
	var out []ticks.Tick
	for _, t := range ts {
		if t.Symbol == symbol {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, order)
	return out
}

// testRecording writes the FXCM day (both symbols, every row, crossed quotes
// included) and checks it comes back exact, in order, in pages without gaps
// or repeats, and that bars match an independent calculation.
func testRecording(t *testing.T, open Open) {
	s := open(t)
	const stream = "databridge:ticks"
	rec := Recording(t, feedtest.FXCM, stream)
	write(t, s, rec, 10_000)

	// The prices stored are the ones the feed parses from the same text,
	// which is what a recorder gets through the tick bus.
	parsed, _, err := feed.ReadFile(feedtest.Recording(t, feedtest.FXCM))
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed) != len(rec) {
		t.Fatalf("the feed reads %d rows of %s, the standard library %d", len(parsed), feedtest.FXCM, len(rec))
	}
	for i := range parsed {
		if parsed[i].Bid != rec[i].Bid || parsed[i].Ask != rec[i].Ask || !parsed[i].Time.Equal(rec[i].Time) {
			t.Fatalf("row %d: the feed reads %+v, the standard library %+v", i+1, parsed[i], rec[i])
		}
	}

	rows := ReadRows(t, feedtest.Recording(t, feedtest.FXCM))
	day := time.Date(2014, 5, 8, 0, 0, 0, 0, time.UTC)
	for _, sym := range []string{"EURUSD", "NZDUSD"} {
		want := of(rec, sym)
		got, pages := readAll(t, s, ticks.TickQuery{Symbol: sym, From: day, To: day.AddDate(0, 0, 1)}, 1000)
		checkTicks(t, sym+" in pages of 1,000", got, want)
		if wantPages := len(want)/1000 + 1; pages != wantPages {
			t.Errorf("%s: %d pages, want %d", sym, pages, wantPages)
		}
		// Every price reads back as the file's text, digit for digit.
		var texts [][2]string
		for _, r := range rows {
			if r.Symbol == sym {
				texts = append(texts, [2]string{r.Bid, r.Ask})
			}
		}
		for i, tk := range got {
			for side, v := range []float64{tk.Bid, tk.Ask} {
				if f, _ := strconv.ParseFloat(texts[i][side], 64); f != v || !sameDecimal(texts[i][side], v) {
					t.Fatalf("%s tick %d: stored %v, the file says %s", sym, i, v, texts[i][side])
				}
			}
		}
	}
	if n := len(of(rec, "EURUSD")); n != 165_612 {
		t.Errorf("EURUSD has %d ticks in %s, SOURCES.md says 165,612", n, feedtest.FXCM)
	}

	t.Run("Range", func(t *testing.T) {
		// [From, To) of a burst, with a To that falls on a tick's time.
		want := of(rec, "EURUSD")
		from, to := time.Date(2014, 5, 8, 11, 45, 0, 0, time.UTC), want[len(want)/2].Time
		var in []ticks.Tick
		for _, tk := range want {
			if !tk.Time.Before(from) && tk.Time.Before(to) {
				in = append(in, tk)
			}
		}
		got, _ := readAll(t, s, ticks.TickQuery{Symbol: "EURUSD", From: from, To: to}, ticks.MaxLimit)
		checkTicks(t, "EURUSD from 11:45 to the middle tick", got, in)
		none, next, err := s.Ticks(ctx(t), ticks.TickQuery{Symbol: "EURUSD", From: day.AddDate(0, 0, 1), To: day.AddDate(0, 0, 2)})
		if err != nil || len(none) != 0 || next != "" {
			t.Errorf("the next day: %d ticks, next %q, %v; want none", len(none), next, err)
		}
		none, _, err = s.Ticks(ctx(t), ticks.TickQuery{Symbol: "GBPUSD", From: day, To: day.AddDate(0, 0, 1)})
		if err != nil || len(none) != 0 {
			t.Errorf("a symbol never written: %d ticks, %v; want none", len(none), err)
		}
	})

	t.Run("Bars", func(t *testing.T) {
		for _, iv := range ticks.Intervals {
			for _, sym := range []string{"EURUSD", "NZDUSD"} {
				want := expectBars(of(rec, sym), iv, day, day.AddDate(0, 0, 1))
				got, err := s.Bars(ctx(t), ticks.BarQuery{Symbol: sym, Interval: iv, From: day, To: day.AddDate(0, 0, 1)})
				if err != nil {
					t.Fatalf("%s %s bars: %v", sym, iv, err)
				}
				checkBars(t, fmt.Sprintf("%s %s bars", sym, iv), got, want)
			}
		}
	})
}

// sameDecimal reports whether v prints as the decimal text s, up to
// trailing zeros of the fraction (the file writes 1.39480, Go 1.3948).
func sameDecimal(s string, v float64) bool {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return strconv.FormatFloat(v, 'f', -1, 64) == s
}

// expectBars computes bars in Go from ticks sorted in the order of
// TickQuery, the independent calculation a store's bars are checked against.
func expectBars(ts []ticks.Tick, iv ticks.Interval, from, to time.Time) []ticks.Bar {
	step := int64(iv.Duration())
	var bars []ticks.Bar
	var sum float64
	for _, tk := range ts {
		if tk.Time.Before(from) || !tk.Time.Before(to) {
			continue
		}
		start := time.Unix(0, tk.Time.UnixNano()/step*step).UTC()
		spread := tk.Ask - tk.Bid
		if n := len(bars); n == 0 || !bars[n-1].Start.Equal(start) {
			if n > 0 {
				bars[n-1].Spread.Mean = sum / float64(bars[n-1].Ticks)
			}
			bars = append(bars, ticks.Bar{Start: start,
				Bid:    ticks.OHLC{Open: tk.Bid, High: tk.Bid, Low: tk.Bid},
				Ask:    ticks.OHLC{Open: tk.Ask, High: tk.Ask, Low: tk.Ask},
				Spread: ticks.Spread{Min: spread, Max: spread}})
			sum = 0
		}
		b := &bars[len(bars)-1]
		b.Ticks++
		b.Bid.High, b.Bid.Low, b.Bid.Close = max(b.Bid.High, tk.Bid), min(b.Bid.Low, tk.Bid), tk.Bid
		b.Ask.High, b.Ask.Low, b.Ask.Close = max(b.Ask.High, tk.Ask), min(b.Ask.Low, tk.Ask), tk.Ask
		b.Spread.Min, b.Spread.Max = min(b.Spread.Min, spread), max(b.Spread.Max, spread)
		sum += spread
	}
	if n := len(bars); n > 0 {
		bars[n-1].Spread.Mean = sum / float64(bars[n-1].Ticks)
	}
	return bars
}

// checkBars compares bars exactly, but for the mean spread: a sum in
// another order rounds differently, by far less than a millionth of a pip.
func checkBars(t *testing.T, what string, got, want []ticks.Bar) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		gm, wm := g.Spread.Mean, w.Spread.Mean
		g.Spread.Mean, w.Spread.Mean = 0, 0
		if !g.Start.Equal(w.Start) || g.Bid != w.Bid || g.Ask != w.Ask || g.Ticks != w.Ticks || g.Spread != w.Spread ||
			math.Abs(gm-wm) > 1e-12 {
			t.Fatalf("%s: bar %d is %+v (mean spread %v), want %+v (mean spread %v)", what, i, got[i], gm, want[i], wm)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d bars, want %d", what, len(got), len(want))
	}
}

// tick makes a tick of stream "s" with entry ID id at t.
func tick(sym string, t time.Time, id string, bid, ask float64) ticks.Tick {
	return ticks.Tick{Symbol: sym, Bid: bid, Ask: ask, Time: t, Stream: "s", ID: id}
}

var t0 = time.Date(2024, 6, 3, 12, 0, 0, 0, time.UTC)

func testIdempotent(t *testing.T, open Open) {
	s := open(t)
	var batch []ticks.Tick
	for i := range 3000 {
		// Five minutes of ticks, so that replays cover some bars and not others.
		batch = append(batch, tick("EURUSD", t0.Add(time.Duration(i)*100*time.Millisecond), fmt.Sprintf("%d-0", 1000+i),
			1.1+float64(i%17)/1e4, 1.2+float64(i%5)/1e4))
	}
	write(t, s, batch, 3000)
	write(t, s, batch, 3000)                            // a replay of the whole batch
	write(t, s, batch[1000:2500], 700)                  // overlapping batches
	write(t, s, slices.Concat(batch[:10], batch), 3010) // duplicates within one batch
	// Two writers at once, as two recorders on one stream.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := 0; start < len(batch); start += 500 {
				if err := s.Write(context.Background(), batch[start:start+500]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	got, _ := readAll(t, s, ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour)}, 1000)
	checkTicks(t, "after writing every tick five times", got, batch)
	for _, iv := range []ticks.Interval{ticks.Minute, ticks.Hour} {
		bars, err := s.Bars(ctx(t), ticks.BarQuery{Symbol: "EURUSD", Interval: iv, From: t0, To: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		checkBars(t, fmt.Sprintf("%s bars after writing every tick five times", iv), bars, expectBars(batch, iv, t0, t0.Add(time.Hour)))
	}
	// The same entry of another stream is another tick.
	other := batch[0]
	other.Stream = "t"
	write(t, s, []ticks.Tick{other}, 1)
	got, _ = readAll(t, s, ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour)}, 1000)
	if len(got) != 3001 {
		t.Fatalf("%d ticks after one of another stream, want 3,001", len(got))
	}
}

func testLast(t *testing.T, open Open) {
	s := open(t)
	last := func(stream, want string) {
		t.Helper()
		got, err := s.Last(ctx(t), stream)
		if err != nil || got != want {
			t.Fatalf("Last(%q) = %q, %v; want %q", stream, got, err, want)
		}
	}
	last("s", "")
	// IDs compare as numbers: 10-0 is after 9-5, and 9-10 after 9-5.
	write(t, s, []ticks.Tick{
		tick("EURUSD", t0, "9-5", 1, 2),
		tick("EURUSD", t0, "10-0", 1, 2),
		tick("EURUSD", t0, "9-10", 1, 2),
	}, 3)
	last("s", "10-0")
	write(t, s, []ticks.Tick{tick("EURUSD", t0, "10-2", 1, 2)}, 1)
	last("s", "10-2")
	write(t, s, []ticks.Tick{tick("EURUSD", t0, "10-1", 1, 2)}, 1) // a late, lower one
	last("s", "10-2")
	other := tick("GBPUSD", t0, "3-0", 1, 2)
	other.Stream = "other"
	write(t, s, []ticks.Tick{other}, 1)
	last("other", "3-0")
	last("s", "10-2")
	last("unknown", "")
	if err := s.DropBefore(ctx(t), t0.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	last("s", "10-2") // retention does not make a recorder record again
}

func testInvalid(t *testing.T, open Open) {
	s := open(t)
	good := tick("EURUSD", t0, "1-0", 1.1, 1.2)
	cases := []struct {
		name   string
		change func(*ticks.Tick)
		msg    string
	}{
		{"no symbol", func(k *ticks.Tick) { k.Symbol = "" }, "no symbol"},
		{"no stream", func(k *ticks.Tick) { k.Stream = "" }, "no stream"},
		{"bad ID", func(k *ticks.Tick) { k.ID = "1" }, `entry ID "1"`},
		{"ID beyond int64", func(k *ticks.Tick) { k.ID = "1-9223372036854775808" }, "entry ID"},
		{"NaN bid", func(k *ticks.Tick) { k.Bid = math.NaN() }, "finite"},
		{"zero time", func(k *ticks.Tick) { k.Time = time.Time{} }, "time 0001-01-01"},
		{"before 1970", func(k *ticks.Tick) { k.Time = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "time 1969"},
		{"publish time before 1970", func(k *ticks.Tick) { k.Published = time.Unix(-5, 0) }, "published"},
	}
	for _, tc := range cases {
		bad := good
		bad.ID = "2-0"
		tc.change(&bad)
		err := s.Write(ctx(t), []ticks.Tick{good, bad})
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "tick 2 of 2") {
			t.Errorf("%s: Write = %v, want an error naming tick 2 of 2 and %q", tc.name, err, tc.msg)
		}
	}
	got, _ := readAll(t, s, ticks.TickQuery{Symbol: "EURUSD", From: t0.Add(-time.Hour), To: t0.Add(time.Hour)}, 10)
	if len(got) != 0 {
		t.Errorf("%d ticks stored from batches with a bad tick, want none", len(got))
	}
	if id, err := s.Last(ctx(t), "s"); id != "" || err != nil {
		t.Errorf("Last = %q, %v after batches with a bad tick, want none", id, err)
	}
	if err := s.Write(ctx(t), nil); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
}

// testTies pages through runs of ticks that share one time, across page
// boundaries and across streams, whose IDs order as numbers, not as text.
func testTies(t *testing.T, open Open) {
	s := open(t)
	var want []ticks.Tick
	for i := range 2500 {
		want = append(want, tick("EURUSD", t0, fmt.Sprintf("%d-%d", 1+i/1000, i%1000), 1.1+float64(i)/1e5, 1.2))
	}
	for i := range 700 {
		k := tick("EURUSD", t0, fmt.Sprintf("5-%d", i), 1.1, 1.3)
		k.Stream = "t" // after stream "s" at the same time
		want = append(want, k)
	}
	want = append(want, tick("EURUSD", t0.Add(time.Nanosecond), "9-0", 1, 2))
	shuffled := slices.Clone(want)
	for i := range shuffled { // deterministic, and far from the read order
		j := (i * 7919) % len(shuffled)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	write(t, s, shuffled, 999)
	slices.SortStableFunc(want, order)
	for _, limit := range []int{7, 1000, 3201, 5000} {
		got, _ := readAll(t, s, ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Second)}, limit)
		checkTicks(t, fmt.Sprintf("ties in pages of %d", limit), got, want)
	}
}

func testQueryErrors(t *testing.T, open Open) {
	s := open(t)
	write(t, s, []ticks.Tick{tick("EURUSD", t0, "1-0", 1, 2), tick("EURUSD", t0, "1-1", 1, 2)}, 2)
	_, next, err := s.Ticks(ctx(t), ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour), Limit: 1})
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, %v", next, err)
	}
	if got, pages := readAll(t, s, ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour)}, 1); len(got) != 2 || pages != 2 {
		t.Errorf("pages of 1: %d ticks in %d pages, want 2 in 2", len(got), pages)
	}
	tq := []struct {
		name string
		q    ticks.TickQuery
		msg  string
	}{
		{"no symbol", ticks.TickQuery{From: t0, To: t0.Add(time.Hour)}, "symbol is required"},
		{"no range", ticks.TickQuery{Symbol: "EURUSD"}, "both are required"},
		{"empty range", ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0}, "not before"},
		{"limit too large", ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour), Limit: ticks.MaxLimit + 1}, "limit 50001"},
		{"negative limit", ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour), Limit: -1}, "limit -1"},
		{"garbage cursor", ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour), Cursor: "abc!"}, `cursor "abc!"`},
		{"cut cursor", ticks.TickQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour), Cursor: next[:len(next)-3]}, "cursor"},
	}
	for _, tc := range tq {
		if _, _, err := s.Ticks(ctx(t), tc.q); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Ticks, %s: %v, want an error with %q", tc.name, err, tc.msg)
		}
	}
	bq := []struct {
		name string
		q    ticks.BarQuery
		msg  string
	}{
		{"no interval", ticks.BarQuery{Symbol: "EURUSD", From: t0, To: t0.Add(time.Hour)}, `interval ""`},
		{"unknown interval", ticks.BarQuery{Symbol: "EURUSD", Interval: "2m", From: t0, To: t0.Add(time.Hour)}, "1m, 5m, 15m, 1h, 4h, 1d"},
		{"no symbol", ticks.BarQuery{Interval: ticks.Hour, From: t0, To: t0.Add(time.Hour)}, "symbol is required"},
		{"reversed range", ticks.BarQuery{Symbol: "EURUSD", Interval: ticks.Hour, From: t0, To: t0.Add(-time.Hour)}, "not before"},
	}
	for _, tc := range bq {
		if _, err := s.Bars(ctx(t), tc.q); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Bars, %s: %v, want an error with %q", tc.name, err, tc.msg)
		}
	}
	if iv, err := ticks.ParseInterval("4h"); err != nil || iv != ticks.FourHours || iv.Duration() != 4*time.Hour {
		t.Errorf("ParseInterval(4h) = %q, %v", iv, err)
	}
	if _, err := ticks.ParseInterval("1w"); err == nil || !strings.Contains(err.Error(), `"1w"`) {
		t.Errorf("ParseInterval(1w) = %v", err)
	}
}

// testRetention writes ticks on both sides of midnights and checks that
// DropBefore removes exactly the days before the cut's day.
func testRetention(t *testing.T, open Open) {
	s := open(t)
	midnight := time.Date(2024, 6, 10, 0, 0, 0, 0, time.UTC)
	var all []ticks.Tick
	n := 0
	add := func(sym string, at time.Time) {
		n++
		all = append(all, tick(sym, at, fmt.Sprintf("%d-0", n), 1.1, 1.2))
	}
	for _, sym := range []string{"EURUSD", "USDJPY"} {
		for d := -3; d <= 1; d++ {
			day := midnight.AddDate(0, 0, d)
			add(sym, day)
			add(sym, day.Add(12*time.Hour))
			add(sym, day.Add(24*time.Hour-time.Nanosecond))
		}
	}
	write(t, s, all, 7)
	left := func() []ticks.Tick {
		var out []ticks.Tick
		for _, sym := range []string{"EURUSD", "USDJPY"} {
			got, _ := readAll(t, s, ticks.TickQuery{Symbol: sym, From: midnight.AddDate(-1, 0, 0), To: midnight.AddDate(1, 0, 0)}, 1000)
			out = append(out, got...)
		}
		return out
	}
	expect := func(cut time.Time) []ticks.Tick {
		var out []ticks.Tick
		for _, sym := range []string{"EURUSD", "USDJPY"} {
			for _, k := range of(all, sym) {
				if !k.Time.Before(cut) {
					out = append(out, k)
				}
			}
		}
		return out
	}
	steps := []struct {
		name string
		at   time.Time
		cut  time.Time // the first time kept
	}{
		{"the first day's last nanosecond keeps it", midnight.AddDate(0, 0, -3).Add(24*time.Hour - time.Nanosecond), midnight.AddDate(0, 0, -3)},
		{"midnight drops the day before", midnight.AddDate(0, 0, -2), midnight.AddDate(0, 0, -2)},
		{"noon drops the days before, not its own morning", midnight.Add(12 * time.Hour), midnight},
		{"again, nothing more", midnight.Add(13 * time.Hour), midnight},
		{"in another zone the UTC day counts", midnight.Add(time.Hour).In(time.FixedZone("UTC-5", -5*3600)), midnight},
	}
	for _, st := range steps {
		if err := s.DropBefore(ctx(t), st.at); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		checkTicks(t, st.name, left(), expect(st.cut))
	}
	if err := s.DropBefore(ctx(t), midnight.AddDate(0, 0, 5)); err != nil {
		t.Fatal(err)
	}
	if got := left(); len(got) != 0 {
		t.Errorf("%d ticks left after dropping every day, want none", len(got))
	}
	// A store whose days are all dropped takes new ones.
	write(t, s, all[:3], 3)
	if got := left(); len(got) != 3 {
		t.Errorf("%d ticks after writing 3 again, want 3", len(got))
	}
}

// testBarEdges checks bars against the independent calculation where they
// are easy to get wrong: ranges that cut a bar, ticks on boundaries, ties
// in time decided by stream and ID, crossed quotes.
func testBarEdges(t *testing.T, open Open) {
	s := open(t)
	day := time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)
	var ts []ticks.Tick
	id := 0
	add := func(stream string, at time.Time, bid, ask float64) {
		id++
		k := tick("EURUSD", at, fmt.Sprintf("%d-%d", 100-id%7, id), bid, ask)
		k.Stream = stream
		ts = append(ts, k)
	}
	for h := range 30 { // past midnight into the next day
		at := day.Add(time.Duration(h) * time.Hour)
		add("s", at, 1.1000+float64(h)/1e4, 1.1002+float64(h)/1e4)
		add("s", at.Add(time.Minute-time.Nanosecond), 1.1010, 1.1005) // crossed
		add("s", at.Add(time.Minute), 1.0990, 1.0995)
		add("t", at.Add(17*time.Minute), 1.2, 1.3)
		add("s", at.Add(17*time.Minute), 1.05, 1.06) // same time: stream s comes first
		add("s", at.Add(59*time.Minute+59*time.Second), 1.1+float64(h%5)/1e3, 1.11)
	}
	write(t, s, ts, 13)
	slices.SortStableFunc(ts, order)
	ranges := []struct{ from, to time.Time }{
		{day, day.AddDate(0, 0, 2)},
		{day.Add(17 * time.Minute), day.Add(26*time.Hour + 17*time.Minute)}, // cuts bars at both ends
		{day.Add(time.Minute - time.Nanosecond), day.Add(time.Minute)},      // one nanosecond: one tick
		{day.Add(3 * time.Minute), day.Add(4 * time.Minute)},                // no tick
	}
	for _, r := range ranges {
		for _, iv := range ticks.Intervals {
			got, err := s.Bars(ctx(t), ticks.BarQuery{Symbol: "EURUSD", Interval: iv, From: r.from, To: r.to})
			if err != nil {
				t.Fatal(err)
			}
			checkBars(t, fmt.Sprintf("%s bars of [%s, %s)", iv, r.from.Format(time.RFC3339Nano), r.to.Format(time.RFC3339Nano)),
				got, expectBars(ts, iv, r.from, r.to))
		}
	}
	if got, _ := s.Bars(ctx(t), ticks.BarQuery{Symbol: "EURUSD", Interval: ticks.Day, From: day, To: day.AddDate(0, 0, 2)}); len(got) != 2 ||
		got[0].Ticks != 24*6 || got[1].Ticks != 6*6 {
		t.Errorf("daily bars %+v, want 144 and 36 ticks", got)
	}
}
