package feed

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/dataplane/market"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UTC()
}

func tick(t testing.TB, ts, sym string, bid, ask float64) market.Tick {
	return market.Tick{Symbol: sym, Bid: bid, Ask: ask, Time: mustTime(t, ts)}
}

func unsafeStringData(s string) *byte { return unsafe.StringData(s) }

func readString(t *testing.T, s string) ([]market.Tick, Stats) {
	t.Helper()
	ticks, stats, err := ReadAll(strings.NewReader(s))
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return ticks, stats
}

// TestReadRecordedSlices reads the slices of real recordings in testdata and
// checks their first and last rows against the text of the files.
func TestReadRecordedSlices(t *testing.T) {
	tests := []struct {
		file        string
		rows        int64
		first, last market.Tick
	}{
		{"lean_fxcm_eurusd_nzdusd_20140508_head.csv.gz", 2000,
			tick(t, "2014-05-08T00:00:00.059Z", "NZDUSD", 0.86485, 0.86492),
			tick(t, "2014-05-08T00:14:06.078Z", "EURUSD", 1.39070, 1.39072)},
		{"lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz", 2886,
			tick(t, "2014-05-08T11:44:30.022Z", "EURUSD", 1.39337, 1.39341),
			tick(t, "2014-05-08T11:46:29.987Z", "NZDUSD", 0.86548, 0.86549)},
		{"lean_oanda_eurusd_nzdusd_20140508_head.csv.gz", 2000,
			tick(t, "2014-05-08T00:00:00.036Z", "NZDUSD", 0.86478, 0.86503),
			tick(t, "2014-05-08T00:40:46.710Z", "EURUSD", 1.39095, 1.39110)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ticks, stats, err := ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			want := Stats{Rows: tt.rows, Ticks: tt.rows}
			if !reflect.DeepEqual(stats, want) {
				t.Errorf("stats = %v, want %v", stats, want)
			}
			if len(ticks) == 0 {
				t.Fatal("no ticks")
			}
			if got := ticks[0]; got != tt.first {
				t.Errorf("first tick = %+v, want %+v", got, tt.first)
			}
			if got := ticks[len(ticks)-1]; got != tt.last {
				t.Errorf("last tick = %+v, want %+v", got, tt.last)
			}
			for i := 1; i < len(ticks); i++ {
				if ticks[i].Time.Before(ticks[i-1].Time) {
					t.Fatalf("tick %d out of order", i)
				}
			}
			// Interning: one string per symbol, shared by every tick.
			if a, b := ticks[0].Symbol, ticks[len(ticks)-1].Symbol; a == b && unsafeStringData(a) != unsafeStringData(b) {
				t.Errorf("symbol %q not interned", a)
			}
		})
	}
}

// TestCompressionIsDetectedByContent names a gzip file .csv and a plain file
// .gz: the reader must not care.
func TestCompressionIsDetectedByContent(t *testing.T) {
	src := filepath.Join("testdata", "lean_oanda_eurusd_nzdusd_20140508_head.csv.gz")
	gz, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gzAsCSV := filepath.Join(dir, "ticks.csv")
	plainAsGz := filepath.Join(dir, "ticks.csv.gz")
	if err := os.WriteFile(gzAsCSV, gz, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plainAsGz, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	a, sa, err := ReadFile(gzAsCSV)
	if err != nil {
		t.Fatal(err)
	}
	b, sb, err := ReadFile(plainAsGz)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2000 || !reflect.DeepEqual(a, b) || !reflect.DeepEqual(sa, sb) {
		t.Errorf("gzip and plain reads differ: %d vs %d ticks, %v vs %v", len(a), len(b), sa, sb)
	}
}

func TestMalformedFixture(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "malformed.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	type skip struct {
		line   int64
		reason Reason
	}
	var skips []skip
	r.OnSkip = func(line int64, reason Reason, _ []byte) { skips = append(skips, skip{line, reason}) }
	var ticks []market.Tick
	for {
		tk, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ticks = append(ticks, tk)
	}
	wantTicks := []market.Tick{
		tick(t, "2014-05-08T00:00:00.059Z", "NZDUSD", 0.86485, 0.86492),
		tick(t, "2014-05-08T00:00:00.260Z", "EURUSD", 1.39070, 1.39072),  // CRLF line ending
		tick(t, "2014-05-08T00:00:00.270Z", "EURUSD", -1.39070, 1.39072), // bad data, but the quality filter's to judge
		tick(t, "2014-05-08T00:00:00.280Z", "EURUSD", 1.39074, 1.39070),  // crossed: likewise
		tick(t, "2014-05-08T00:00:00.290Z", "EURUSD", 1.39070, 1.39072),  // +02:00 offset
		tick(t, "2014-05-08T00:00:00.300Z", "EURUSD", 1.39070, 1.39072),  // exponent form
		tick(t, "2014-05-08T00:00:00.310Z", "EURUSD", 1.39071, 1.39073),  // no final newline
	}
	if !reflect.DeepEqual(ticks, wantTicks) {
		t.Errorf("ticks:\n got %+v\nwant %+v", ticks, wantTicks)
	}
	wantSkips := []skip{
		{3, WrongFieldCount}, {4, WrongFieldCount}, {5, BadTimestamp}, {6, BadTimestamp}, {7, BadTimestamp},
		{8, BadSymbol}, {9, BadSymbol}, {10, BadPrice}, {11, BadPrice}, {12, BadPrice},
		{15, OutOfOrder}, {20, WrongFieldCount},
	}
	if !reflect.DeepEqual(skips, wantSkips) {
		t.Errorf("skips:\n got %v\nwant %v", skips, wantSkips)
	}
	wantStats := Stats{Rows: 19, Ticks: 7, Skipped: map[Reason]int64{
		WrongFieldCount: 3, BadTimestamp: 3, BadSymbol: 2, BadPrice: 3, OutOfOrder: 1,
	}}
	if got := r.Stats(); !reflect.DeepEqual(got, wantStats) {
		t.Errorf("stats = %v, want %v", got, wantStats)
	}
	if got := r.Stats().SkippedTotal(); got != 12 {
		t.Errorf("SkippedTotal = %d, want 12", got)
	}
}

// TestRows feeds one row after a good one and checks how it is judged.
func TestRows(t *testing.T) {
	const prev = "2014-05-08T11:45:00.000Z,EURUSD,1.39334,1.39337\n"
	tests := []struct {
		name   string
		row    string
		want   *market.Tick // nil: skipped
		reason Reason
	}{
		{"good", "2014-05-08T11:45:00.041Z,NZDUSD,0.86528,0.86534", &market.Tick{Symbol: "NZDUSD", Bid: 0.86528, Ask: 0.86534, Time: mustTime(t, "2014-05-08T11:45:00.041Z")}, 0},
		{"same time is in order", "2014-05-08T11:45:00.000Z,EURUSD,1.39334,1.39337", &market.Tick{Symbol: "EURUSD", Bid: 1.39334, Ask: 1.39337, Time: mustTime(t, "2014-05-08T11:45:00Z")}, 0},
		{"nanoseconds", "2014-05-08T11:45:00.123456789Z,EURUSD,1,2", &market.Tick{Symbol: "EURUSD", Bid: 1, Ask: 2, Time: mustTime(t, "2014-05-08T11:45:00.123456789Z")}, 0},
		{"zero price passes to quality", "2014-05-08T11:45:01Z,EURUSD,0,1.39337", &market.Tick{Symbol: "EURUSD", Bid: 0, Ask: 1.39337, Time: mustTime(t, "2014-05-08T11:45:01Z")}, 0},
		{"three fields", "2014-05-08T11:45:01Z,EURUSD,1.39334", nil, WrongFieldCount},
		{"five fields", "2014-05-08T11:45:01Z,EURUSD,1.39334,1.39337,9", nil, WrongFieldCount},
		{"trailing comma", "2014-05-08T11:45:01Z,EURUSD,1.39334,1.39337,", nil, WrongFieldCount},
		{"one field", "hello", nil, WrongFieldCount},
		{"no zone", "2014-05-08T11:45:01.000,EURUSD,1.39334,1.39337", nil, BadTimestamp},
		{"unix seconds", "1399549501,EURUSD,1.39334,1.39337", nil, BadTimestamp},
		{"date only", "2014-05-08,EURUSD,1.39334,1.39337", nil, BadTimestamp},
		{"empty fraction", "2014-05-08T11:45:01.Z,EURUSD,1.39334,1.39337", nil, BadTimestamp},
		{"leap second", "2014-05-08T23:59:60Z,EURUSD,1.39334,1.39337", nil, BadTimestamp},
		{"lowercase symbol", "2014-05-08T11:45:01Z,eurusd,1.39334,1.39337", nil, BadSymbol},
		{"seven letters", "2014-05-08T11:45:01Z,EURUSDX,1.39334,1.39337", nil, BadSymbol},
		{"empty symbol", "2014-05-08T11:45:01Z,,1.39334,1.39337", nil, BadSymbol},
		{"quoted field", `2014-05-08T11:45:01Z,"EURUSD",1.39334,1.39337`, nil, BadSymbol},
		{"empty bid", "2014-05-08T11:45:01Z,EURUSD,,1.39337", nil, BadPrice},
		{"comma decimal", "2014-05-08T11:45:01Z,EURUSD,1.39334,1;39337", nil, BadPrice},
		{"infinite ask", "2014-05-08T11:45:01Z,EURUSD,1.39334,Inf", nil, BadPrice},
		{"hex price", "2014-05-08T11:45:01Z,EURUSD,0x1p0,1.39337", nil, BadPrice},
		{"space in price", "2014-05-08T11:45:01Z,EURUSD, 1.39334,1.39337", nil, BadPrice},
		{"overflowing price", "2014-05-08T11:45:01Z,EURUSD,1e999,1.39337", nil, BadPrice},
		{"earlier than previous", "2014-05-08T11:44:59.999Z,EURUSD,1.39334,1.39337", nil, OutOfOrder},
		{"earlier by zone", "2014-05-08T12:44:59.999+01:00,EURUSD,1.39334,1.39337", nil, OutOfOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reasons []Reason
			r, err := NewReader(strings.NewReader(Header + "\n" + prev + tt.row + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			r.OnSkip = func(_ int64, reason Reason, _ []byte) { reasons = append(reasons, reason) }
			if _, err := r.Read(); err != nil {
				t.Fatalf("previous row: %v", err)
			}
			got, err := r.Read()
			if tt.want == nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("Read() = %+v, %v; want the row skipped", got, err)
				}
				if want := []Reason{tt.reason}; !reflect.DeepEqual(reasons, want) {
					t.Errorf("skipped for %v, want %v", reasons, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v (skips %v)", err, reasons)
			}
			if got != *tt.want {
				t.Errorf("Read() = %+v, want %+v", got, *tt.want)
			}
		})
	}
}

// TestReaderSkipsAbsurdPricesAsBadPrice: a finite but absurd quote such as
// bid=ask=1e308 is not a price at all, so it is counted and skipped like any
// other malformed row; zero and negative prices still pass, for the quality
// filter to drop as non_positive.
func TestReaderSkipsAbsurdPricesAsBadPrice(t *testing.T) {
	const in = Header + "\n" +
		"2014-05-08T11:45:00.000Z,EURUSD,1e308,1e308\n" +
		"2014-05-08T11:45:00.001Z,EURUSD,1.39334,1000000.5\n" +
		"2014-05-08T11:45:00.002Z,EURUSD,-2e6,1.39337\n" +
		"2014-05-08T11:45:00.003Z,EURUSD,1_000,1.39337\n" +
		"2014-05-08T11:45:00.004Z,EURUSD,0x1p0,1.39337\n" +
		"2014-05-08T11:45:00.005Z,USDVND,25450.5,25460.5\n" +
		"2014-05-08T11:45:00.006Z,EURUSD,0,-1.39337\n" +
		"2014-05-08T11:45:00.007Z,EURUSD,1e6,1e6\n"
	ticks, stats := readString(t, in)
	want := []market.Tick{
		tick(t, "2014-05-08T11:45:00.005Z", "USDVND", 25450.5, 25460.5),
		tick(t, "2014-05-08T11:45:00.006Z", "EURUSD", 0, -1.39337),
		tick(t, "2014-05-08T11:45:00.007Z", "EURUSD", market.MaxPrice, market.MaxPrice),
	}
	if !reflect.DeepEqual(ticks, want) {
		t.Errorf("ticks:\n got %+v\nwant %+v", ticks, want)
	}
	if wantStats := (Stats{Rows: 8, Ticks: 3, Skipped: map[Reason]int64{BadPrice: 5}}); !reflect.DeepEqual(stats, wantStats) {
		t.Errorf("stats = %v, want %v", stats, wantStats)
	}
}

func TestHeader(t *testing.T) {
	const row = "2014-05-08T11:45:00.041Z,NZDUSD,0.86528,0.86534\n"
	tests := []struct {
		name    string
		input   string
		ticks   int
		wantErr string
	}{
		{"standard", "ts,symbol,bid,ask\n" + row, 1, ""},
		{"no header", row + row, 2, ""},
		{"upper case and spaces", "TS, Symbol, Bid, Ask\r\n" + row, 1, ""},
		{"byte order mark", "\ufeffts,symbol,bid,ask\n" + row, 1, ""},
		{"blank lines first", "\n\n" + "ts,symbol,bid,ask\n" + row, 1, ""},
		{"header only", "ts,symbol,bid,ask\n", 0, ""},
		{"empty file", "", 0, ""},
		{"columns swapped", "symbol,ts,bid,ask\n" + row, 0, `line 1: header "symbol,ts,bid,ask" is not "ts,symbol,bid,ask"`},
		{"extra column", "ts,symbol,bid,ask,volume\n" + row, 0, `header "ts,symbol,bid,ask,volume"`},
		{"not a tick file", "<html>\n", 0, `header "<html>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticks, stats, err := ReadAll(strings.NewReader(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ticks) != tt.ticks || stats.SkippedTotal() != 0 {
				t.Errorf("%d ticks, stats %v; want %d ticks, nothing skipped", len(ticks), stats, tt.ticks)
			}
		})
	}
}

func TestLineTooLong(t *testing.T) {
	const row = "2014-05-08T11:45:00.041Z,NZDUSD,0.86528,0.86534\n"
	input := row + strings.Repeat("x", 3*readBufferSize) + "\n" + row
	ticks, stats := readString(t, input)
	want := Stats{Rows: 3, Ticks: 2, Skipped: map[Reason]int64{LineTooLong: 1}}
	if len(ticks) != 2 || !reflect.DeepEqual(stats, want) {
		t.Errorf("%d ticks, stats %v; want 2 ticks, %v", len(ticks), stats, want)
	}
	// The same at the very end of the input, with no newline.
	ticks, stats = readString(t, row+strings.Repeat("x", 2*readBufferSize))
	want = Stats{Rows: 2, Ticks: 1, Skipped: map[Reason]int64{LineTooLong: 1}}
	if len(ticks) != 1 || !reflect.DeepEqual(stats, want) {
		t.Errorf("at end: %d ticks, stats %v; want 1 tick, %v", len(ticks), stats, want)
	}
}

func TestTruncatedGzipIsAnError(t *testing.T) {
	gz, err := os.ReadFile(filepath.Join("testdata", "lean_fxcm_eurusd_nzdusd_20140508_head.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	ticks, _, err := ReadAll(bytes.NewReader(gz[:len(gz)/2]))
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want a truncation error", err)
	}
	if len(ticks) == 0 {
		t.Errorf("no ticks before the truncation")
	}
}

// TestPartialRowBeforeReadErrorIsDropped: a row cut short by a failing
// source can still look valid ("0.864" for "0.86492"); it must not become a tick.
func TestPartialRowBeforeReadError(t *testing.T) {
	errDisk := errors.New("disk on fire")
	src := io.MultiReader(
		strings.NewReader("2014-05-08T00:00:00.059Z,NZDUSD,0.86485,0.86492\n2014-05-08T00:00:00.087Z,NZDUSD,0.86484,0.864"),
		iotest.ErrReader(errDisk))
	ticks, stats, err := ReadAll(src)
	if !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want the source's error", err)
	}
	if len(ticks) != 1 || stats.Rows != 1 {
		t.Errorf("%d ticks, stats %v: want only the complete row", len(ticks), stats)
	}
}

func TestStatsFormats(t *testing.T) {
	s := Stats{Rows: 5, Ticks: 2, Skipped: map[Reason]int64{BadPrice: 2, WrongFieldCount: 1}}
	if got, want := s.String(), "rows=5 ticks=2 wrong_field_count=1 bad_price=2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"rows":5,"ticks":2,"skipped":{"bad_price":2,"wrong_field_count":1}}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

// TestReadFullRecordings reads each whole day and checks the row counts that
// SOURCES.md gives: the reader must accept every real row.
func TestReadFullRecordings(t *testing.T) {
	for name, rows := range map[string]int64{
		feedtest.FXCM:      280839,
		feedtest.OANDA:     137707,
		feedtest.Dukascopy: 58953,
	} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(feedtest.Recording(t, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := r.Read(); err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
			}
			if got, want := r.Stats(), (Stats{Rows: rows, Ticks: rows}); !reflect.DeepEqual(got, want) {
				t.Errorf("stats = %v, want %v", got, want)
			}
		})
	}
}

// benchmarkRead reads the whole of data once per op and reports time per row.
func benchmarkRead(b *testing.B, data []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var rows int64
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Read(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
		rows = r.Stats().Rows
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*rows), "ns/row")
}

// BenchmarkReaderFXCM reads the whole FXCM day (280,839 rows) per op: gzip
// included, then from plain text to show the parser's own cost.
func BenchmarkReaderFXCM(b *testing.B) {
	gz, err := os.ReadFile(feedtest.Recording(b, feedtest.FXCM))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("gzip", func(b *testing.B) { benchmarkRead(b, gz) })
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		b.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("plain", func(b *testing.B) { benchmarkRead(b, plain) })
}
