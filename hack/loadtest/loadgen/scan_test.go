package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Frames as the hub encodes them (dataplane/stream/hub.go and encode.go):
// fields in a fixed order, no spaces, quality fields by data quality level.
const (
	basicFrame = `{"type":"market_data","tier_applied":{"tier":"basic","update_interval_ms":1000,"data_quality":"basic"},"seq":7,` +
		`"ticks":[{"symbol":"EURUSD","seq":12,"bid":1.0841,"ask":1.0843,"time":"2025-01-02T03:04:05.678Z","published_us":1735787045678123}],` +
		`"filter_stats":{"superseded":3,"dropped":0}}`
	premiumFrame = `{"type":"market_data","tier_applied":{"tier":"premium","update_interval_ms":0.5,"data_quality":"premium"},"seq":123456,` +
		`"ticks":[{"symbol":"EURUSD","seq":900,"bid":1.0841,"ask":1.0843,"time":"2025-01-02T03:04:05.678Z","published_us":1735787045678123,` +
		`"market_open":true,"score":0.9876,"liquidity":0.5000,"session":"london","volatility":1.234e-05},` +
		`{"symbol":"USDJPY","seq":77,"bid":157.12,"ask":157.14,"time":"2025-01-02T03:04:05.679Z","published_us":1735787045679001,` +
		`"market_open":false,"score":0.1000,"liquidity":0.0000,"session":"tokyo","volatility":0}],` +
		`"filter_stats":{"superseded":0,"dropped":5}}`
	snapshotFrame = `{"type":"snapshot","ticks":[{"symbol":"GBPUSD","seq":4,"bid":1.25,"ask":1.2502,"time":"2025-01-02T03:04:05.000Z","published_us":1}]}`
	welcomeFrame  = `{"type":"welcome","protocol":"databridge.v1","session_id":"ab12","tenant":"acme","company":"Acme \"Trading\" {Ltd}",` +
		`"user":"u1","tier":"pro","update_interval_ms":100,"data_quality":"high","entitled_symbols":["EURUSD","GBPUSD"],` +
		`"limits":{"max_connections_per_user":5,"max_connections_per_tenant":50,"daily_api_calls":null,"daily_data_points":1000000,` +
		`"max_symbols_per_message":256,"max_message_bytes":262144}}`
)

func TestScan(t *testing.T) {
	type tick struct {
		sym string
		seq uint64
		pub int64
	}
	cases := []struct {
		name       string
		msg        string
		typ        string
		seq        uint64
		hasSeq     bool
		ticks      []tick
		superseded uint64
		dropped    uint64
	}{
		{name: "basic tier frame", msg: basicFrame, typ: "market_data", seq: 7, hasSeq: true,
			ticks: []tick{{"EURUSD", 12, 1735787045678123}}, superseded: 3},
		{name: "premium tier frame with quality fields", msg: premiumFrame, typ: "market_data", seq: 123456, hasSeq: true,
			ticks: []tick{{"EURUSD", 900, 1735787045678123}, {"USDJPY", 77, 1735787045679001}}, dropped: 5},
		{name: "snapshot", msg: snapshotFrame, typ: "snapshot", ticks: []tick{{"GBPUSD", 4, 1}}},
		{name: "welcome is skipped except its type", msg: welcomeFrame, typ: "welcome"},
		{name: "tick fields in any order",
			msg: `{"type":"market_data","seq":1,"ticks":[{"published_us":55,"bid":1,"session":"ny","seq":3,"symbol":"AUDUSD"}],"filter_stats":{"dropped":2,"superseded":1}}`,
			typ: "market_data", seq: 1, hasSeq: true, ticks: []tick{{"AUDUSD", 3, 55}}, superseded: 1, dropped: 2},
		{name: "top-level fields in any order, as encoding/json writes them",
			msg: `{"filter_stats":{"superseded":9,"dropped":0},"ticks":[{"symbol":"NZDUSD","seq":1}],"seq":2,"type":"market_data"}`,
			typ: "market_data", seq: 2, hasSeq: true, ticks: []tick{{"NZDUSD", 1, 0}}, superseded: 9},
		{name: "tick without published_us", msg: `{"type":"market_data","seq":3,"ticks":[{"symbol":"EURGBP","seq":8,"bid":0.85}]}`,
			typ: "market_data", seq: 3, hasSeq: true, ticks: []tick{{"EURGBP", 8, 0}}},
		{name: "escaped symbol", msg: `{"type":"market_data","seq":1,"ticks":[{"symbol":"EUR\u0055SD","seq":1},{"symbol":"GBP\/JPY","seq":2}]}`,
			typ: "market_data", seq: 1, hasSeq: true, ticks: []tick{{"EURUSD", 1, 0}, {"GBP/JPY", 2, 0}}},
		{name: "escaped keys", msg: `{"t\u0079pe":"market_data","s\u0065q":4,"ticks":[{"symb\u006fl":"CADJPY","\u0073eq":6,"published_\u0075s":7}]}`,
			typ: "market_data", seq: 4, hasSeq: true, ticks: []tick{{"CADJPY", 6, 7}}},
		{name: "brackets and quotes inside skipped strings",
			msg: `{"type":"market_data","tier_applied":{"tier":"pro \"x\" \\ }]{[","data_quality":"h"},"seq":5,` +
				`"ticks":[{"symbol":"EURCHF","session":"\"}],","seq":9,"extra":[{"a":"]"},[1,2,{"b":null}]]}]}`,
			typ: "market_data", seq: 5, hasSeq: true, ticks: []tick{{"EURCHF", 9, 0}}},
		{name: "surrogate pair and lone surrogate",
			msg: `{"type":"x","ticks":[{"symbol":"\ud83d\ude00"},{"symbol":"\ud800A"}]}`,
			typ: "x", ticks: []tick{{"\U0001F600", 0, 0}, {"\uFFFDA", 0, 0}}},
		{name: "whitespace everywhere",
			msg: " {\n \"type\" : \"market_data\" ,\t\"seq\" : 8 , \"ticks\" : [ { \"symbol\" : \"EURJPY\" , \"seq\" : 2 , \"published_us\" : 3 } ] ,\r\n \"filter_stats\" : { \"superseded\" : 1 , \"dropped\" : 0 } } \n",
			typ: "market_data", seq: 8, hasSeq: true, ticks: []tick{{"EURJPY", 2, 3}}, superseded: 1},
		{name: "empty ticks", msg: `{"type":"market_data","seq":2,"ticks":[],"filter_stats":{"superseded":0,"dropped":4}}`,
			typ: "market_data", seq: 2, hasSeq: true, dropped: 4},
		{name: "null ticks", msg: `{"type":"snapshot","ticks":null}`, typ: "snapshot"},
		{name: "empty tick object", msg: `{"ticks":[{}]}`, ticks: []tick{{"", 0, 0}}},
		{name: "largest values", msg: `{"seq":18446744073709551615,"ticks":[{"seq":18446744073709551615,"published_us":-9223372036854775808}]}`,
			seq: 1<<64 - 1, hasSeq: true, ticks: []tick{{"", 1<<64 - 1, -1 << 63}}},
		{name: "repeated keys: the last wins", msg: `{"seq":1,"seq":2,"ticks":[{"seq":1}],"ticks":[{"seq":3}],"filter_stats":{"superseded":5},"filter_stats":{"dropped":6}}`,
			seq: 2, hasSeq: true, ticks: []tick{{"", 3, 0}}, dropped: 6},
		{name: "filter_stats not an object is skipped", msg: `{"type":"market_data","filter_stats":null}`, typ: "market_data"},
	}
	var f Frame
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One Frame for every case: a scan must not leak state into the next.
			if err := f.Scan([]byte(tc.msg)); err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if string(f.Type) != tc.typ || f.Seq != tc.seq || f.HasSeq != tc.hasSeq {
				t.Errorf("type %q seq %d (has %v), want %q %d (%v)", f.Type, f.Seq, f.HasSeq, tc.typ, tc.seq, tc.hasSeq)
			}
			if f.Superseded != tc.superseded || f.Dropped != tc.dropped {
				t.Errorf("filter_stats %d/%d, want %d/%d", f.Superseded, f.Dropped, tc.superseded, tc.dropped)
			}
			var got []tick
			for _, tk := range f.Ticks {
				got = append(got, tick{string(tk.Symbol), tk.Seq, tk.PublishedUS})
			}
			if len(got) != len(tc.ticks) {
				t.Fatalf("ticks %+v, want %+v", got, tc.ticks)
			}
			for i := range got {
				if got[i] != tc.ticks[i] {
					t.Errorf("tick %d = %+v, want %+v", i, got[i], tc.ticks[i])
				}
			}
		})
	}
}

func TestScanRefuses(t *testing.T) {
	cases := map[string]string{
		"empty":                 ``,
		"not an object":         `[1]`,
		"truncated in a string": `{"type":"market_da`,
		"truncated in ticks":    `{"type":"market_data","seq":1,"ticks":[{"symbol":"EURUSD","seq":1`,
		"truncated after key":   `{"seq"`,
		"truncated in skip":     `{"x":{"y":[1,2`,
		"fractional seq":        `{"seq":1.5}`,
		"exponent seq":          `{"seq":1e3}`,
		"negative seq":          `{"seq":-1}`,
		"string seq":            `{"seq":"7"}`,
		"seq overflow":          `{"seq":18446744073709551616}`,
		"published_us overflow": `{"ticks":[{"published_us":9223372036854775808}]}`,
		"bare minus":            `{"ticks":[{"published_us":-}]}`,
		"trailing data":         `{"seq":1}x`,
		"two messages":          `{"seq":1}{"seq":2}`,
		"missing colon":         `{"seq" 1}`,
		"missing comma":         `{"seq":1 "type":"x"}`,
		"ticks is an object":    `{"ticks":{}}`,
		"tick is a number":      `{"ticks":[1]}`,
		"missing value":         `{"x":,"seq":1}`,
		"key not a string":      `{seq:1}`,
		"bad escape":            `{"type":"\x"}`,
		"short unicode escape":  `{"type":"\u12"}`,
		"bad escape in a key":   `{"s\q":1}`,
		"type not a string":     `{"type":1}`,
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			var f Frame
			if err := f.Scan([]byte(msg)); err == nil {
				t.Errorf("Scan(%q) = nil, want an error", msg)
			}
		})
	}
}

func TestScanSymbolSurvivesLaterEscapes(t *testing.T) {
	// Escaped strings share scratch space that may be reallocated while a
	// frame is scanned; symbols handed out earlier must keep their bytes.
	var b strings.Builder
	b.WriteString(`{"type":"market_data","seq":1,"ticks":[`)
	for i := range 200 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"symbol":"S\u0059M` + strconv.Itoa(i) + `","session":"\u00e9\u00e9\u00e9\u00e9"}`)
	}
	b.WriteString(`]}`)
	var f Frame
	if err := f.Scan([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	for i, tk := range f.Ticks {
		if want := "SYM" + strconv.Itoa(i); string(tk.Symbol) != want {
			t.Fatalf("tick %d symbol %q, want %q", i, tk.Symbol, want)
		}
	}
}

// FuzzScan checks that Scan never panics, and that whenever it accepts
// valid JSON it read the same values encoding/json does.
func FuzzScan(f *testing.F) {
	for _, s := range []string{basicFrame, premiumFrame, snapshotFrame, welcomeFrame,
		`{"ticks":[{"symbol":"\ud83d\ude00","seq":1}]}`, `{"s\u0065q":1}`, `{"x":[{"y":"]}"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var fr Frame
		if fr.Scan(msg) != nil || !json.Valid(msg) || !utf8.Valid(msg) {
			return
		}
		var want map[string]any
		d := json.NewDecoder(bytes.NewReader(msg))
		d.UseNumber()
		if d.Decode(&want) != nil {
			t.Fatalf("Scan accepted %q, which encoding/json cannot decode into an object", msg)
		}
		if typ, ok := want["type"].(string); ok && typ != string(fr.Type) {
			t.Errorf("type %q, encoding/json read %q", fr.Type, typ)
		}
		if n, ok := want["seq"].(json.Number); ok && n.String() != strconv.FormatUint(fr.Seq, 10) {
			t.Errorf("seq %d, encoding/json read %s", fr.Seq, n)
		}
		ticks, _ := want["ticks"].([]any)
		if len(ticks) != len(fr.Ticks) {
			t.Fatalf("%d ticks, encoding/json read %d", len(fr.Ticks), len(ticks))
		}
		for i, raw := range ticks {
			tk := raw.(map[string]any)
			if sym, ok := tk["symbol"].(string); ok && sym != string(fr.Ticks[i].Symbol) {
				t.Errorf("tick %d symbol %q, encoding/json read %q", i, fr.Ticks[i].Symbol, sym)
			}
			if n, ok := tk["seq"].(json.Number); ok && n.String() != strconv.FormatUint(fr.Ticks[i].Seq, 10) {
				t.Errorf("tick %d seq %d, encoding/json read %s", i, fr.Ticks[i].Seq, n)
			}
			if n, ok := tk["published_us"].(json.Number); ok && n.String() != strconv.FormatInt(fr.Ticks[i].PublishedUS, 10) {
				t.Errorf("tick %d published_us %d, encoding/json read %s", i, fr.Ticks[i].PublishedUS, n)
			}
		}
		if fs, ok := want["filter_stats"].(map[string]any); ok {
			if n, ok := fs["superseded"].(json.Number); ok && n.String() != strconv.FormatUint(fr.Superseded, 10) {
				t.Errorf("superseded %d, encoding/json read %s", fr.Superseded, n)
			}
			if n, ok := fs["dropped"].(json.Number); ok && n.String() != strconv.FormatUint(fr.Dropped, 10) {
				t.Errorf("dropped %d, encoding/json read %s", fr.Dropped, n)
			}
		}
	})
}

// BenchmarkScan measures the per-frame cost that bounds how many frames a
// second the load tester can read on a core it shares with the server.
func BenchmarkScan(b *testing.B) {
	five := `{"type":"market_data","tier_applied":{"tier":"premium","update_interval_ms":0.5,"data_quality":"premium"},"seq":123456,"ticks":[` +
		strings.Repeat(`{"symbol":"EURUSD","seq":900,"bid":1.0841,"ask":1.0843,"time":"2025-01-02T03:04:05.678Z","published_us":1735787045678123,`+
			`"market_open":true,"score":0.9876,"liquidity":0.5000,"session":"london","volatility":1.234e-05},`, 4) +
		`{"symbol":"USDJPY","seq":77,"bid":157.12,"ask":157.14,"time":"2025-01-02T03:04:05.679Z","published_us":1735787045679001}` +
		`],"filter_stats":{"superseded":0,"dropped":5}}`
	for _, bc := range []struct{ name, msg string }{{"basic-1tick", basicFrame}, {"premium-5ticks", five}} {
		b.Run(bc.name, func(b *testing.B) {
			msg := []byte(bc.msg)
			var f Frame
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := f.Scan(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
