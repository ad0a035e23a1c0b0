package spool

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// record is one record of a segment file, as a test reads it.
type record struct {
	off  int
	kind byte
	rec  []byte
}

// readRecords lists the records of an undamaged segment file.
func readRecords(t *testing.T, data []byte) []record {
	t.Helper()
	var out []record
	for off := headerSize; ; {
		kind, rec, next, st := parseRecord(data, off)
		if st == recEnd {
			return out
		}
		if st != recOK {
			t.Fatalf("record at %d: status %d", off, st)
		}
		out = append(out, record{off, kind, append([]byte(nil), rec...)})
		off = next
	}
}

// writeSpool meters three sessions, SLA minutes and availability into a
// new spool and closes it without shipping; it returns the spool's
// directory and its segment file.
func writeSpool(t *testing.T) (dir, seg string) {
	t.Helper()
	clk := newClock(t0)
	ts := openTestSpool(t, "", withClock(clk))
	var recs []*Recorder
	for i := range 3 {
		r, err := ts.NewRecorder(identity("acme", fmt.Sprintf("s%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	for i := range 40 {
		now := clk.Advance(4 * time.Second)
		for j, r := range recs {
			if err := r.Add(now, Delta{DataPoints: int64(1 + i + 100*j), APICalls: 1, Frames: 1, Bytes: 10}); err != nil {
				t.Fatal(err)
			}
		}
		if i%4 == 0 {
			m := now.Truncate(time.Minute)
			if err := ts.AppendSLA(usage.SLAMinute{Tier: "pro", Tenant: fmt.Sprintf("t%d", i), Minute: m, Deliveries: int64(i + 1), Within: 1}); err != nil {
				t.Fatal(err)
			}
			if err := ts.AppendAvailability(usage.Availability{Tier: fmt.Sprintf("tier%d", i), Minute: m, Seconds: 60, Up: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(ts.Dir(), "*"+segmentSuffix))
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	return ts.Dir(), segs[0]
}

// expected is what a set of records ships: event counts by session and
// seq, SLA minutes and availability records by id.
type expected struct {
	events map[string]usage.Totals
	sla    map[string]int64
	av     map[string]int64
}

func expect(t *testing.T, recs []record, lost map[int]bool) expected {
	t.Helper()
	want := expected{events: map[string]usage.Totals{}, sla: map[string]int64{}, av: map[string]int64{}}
	sessions := map[uint32]string{}
	for _, r := range recs {
		switch r.kind {
		case kindIdentity:
			var id usage.Identity
			json.Unmarshal(r.rec[identJSON:], &id)
			sessions[recKey(r.rec)] = id.Session
		case kindEvent:
			if lost[r.off] {
				continue
			}
			c, _ := readCopy(r.rec)
			want.events[fmt.Sprintf("%s/%d", sessions[recKey(r.rec)], recSeq(r.rec))] = usage.Totals{
				DataPoints: c.c[0], APICalls: c.c[1], Frames: c.c[2], Bytes: c.c[3], Processing: time.Duration(c.c[4]),
			}
		case kindSLA, kindAvailability:
			if lost[r.off] {
				continue
			}
			var v struct {
				ID         string `json:"id"`
				Deliveries int64  `json:"deliveries"`
				Up         int64  `json:"up"`
			}
			json.Unmarshal(r.rec[jsonAt:], &v)
			if r.kind == kindSLA {
				want.sla[v.ID] = v.Deliveries
			} else {
				want.av[v.ID] = v.Up
			}
		}
	}
	return want
}

func (m *memStore) shipped() expected {
	m.mu.Lock()
	defer m.mu.Unlock()
	got := expected{events: map[string]usage.Totals{}, sla: map[string]int64{}, av: map[string]int64{}}
	for _, e := range m.events {
		got.events[fmt.Sprintf("%s/%d", e.Session, e.Seq)] = usage.Totals{
			DataPoints: e.DataPoints, APICalls: e.APICalls, Frames: e.Frames, Bytes: e.Bytes, Processing: e.Processing,
		}
	}
	for id, r := range m.sla {
		got.sla[id] = r.Deliveries
	}
	for id, r := range m.av {
		got.av[id] = r.Up
	}
	return got
}

func compare(t *testing.T, got, want expected) {
	t.Helper()
	for what, pair := range map[string][2]int{
		"events":       {len(got.events), len(want.events)},
		"SLA minutes":  {len(got.sla), len(want.sla)},
		"availability": {len(got.av), len(want.av)},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%d %s shipped, want %d", pair[0], what, pair[1])
		}
	}
	for k, w := range want.events {
		if g, ok := got.events[k]; !ok || g != w {
			t.Errorf("event %s: shipped %+v (%v), want %+v", k, g, ok, w)
		}
	}
	for k, w := range want.sla {
		if g, ok := got.sla[k]; !ok || g != w {
			t.Errorf("SLA minute %s: shipped %d (%v), want %d", k, g, ok, w)
		}
	}
	for k, w := range want.av {
		if g, ok := got.av[k]; !ok || g != w {
			t.Errorf("availability %s: shipped %d (%v), want %d", k, g, ok, w)
		}
	}
}

// TestMalformedRecords damages records in every way a crash of the machine
// or a bad disk can: each damaged record is counted, the file is logged
// once with the offset of the first, and every other record is shipped.
func TestMalformedRecords(t *testing.T) {
	dir, seg := writeSpool(t)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, data)
	// pick finds the first record of kind at index at or after *i, and
	// moves *i past its neighbour: damaged records that touch would be one
	// damaged region, counted once.
	i := 5
	pick := func(kind byte) record {
		for ; i < len(recs); i++ {
			if recs[i].kind == kind {
				r := recs[i]
				i += 2
				return r
			}
		}
		t.Fatalf("no %s record left to damage", kindNames[kind])
		return record{}
	}
	lost := map[int]bool{}
	damage := []struct {
		what string
		r    record
		do   func(b []byte)
	}{
		{"a flipped byte in an SLA record", pick(kindSLA), func(b []byte) { b[jsonAt+3] ^= 0x40 }},
		{"both counter copies of an event", pick(kindEvent), func(b []byte) { b[evCopyA+20] ^= 1; b[evCopyA+copySize+20] ^= 1 }},
		{"the fixed part of an event", pick(kindEvent), func(b []byte) { b[evKey] ^= 0xff }},
		{"an impossible length", pick(kindAvailability), func(b []byte) { binary.LittleEndian.PutUint32(b, 0x00ffffff) }},
		{"a lost page in the middle (zeros)", pick(kindEvent), func(b []byte) { clear(b[:evSize]) }},
	}
	first := len(data)
	for _, d := range damage {
		t.Logf("%s at offset %d", d.what, d.r.off)
		d.do(data[d.r.off:])
		lost[d.r.off] = true
		first = min(first, d.r.off)
	}
	// A record cut short at the tail: its length written, its body not.
	last := recs[len(recs)-1]
	tail := last.off + alignUp(len(last.rec))
	binary.LittleEndian.PutUint32(data[tail:], evSize-prefixSize)
	data[tail+8] = kindEvent
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}

	ts := openTestSpool(t, dir)
	if n, want := ts.metric(t, "databridge_spool_records_malformed_total", ""), float64(len(damage)+1); n != want {
		t.Errorf("databridge_spool_records_malformed_total = %v, want %v", n, want)
	}
	logs := ts.logs.String()
	if n := ts.logs.count("records damaged"); n != 1 {
		t.Errorf("%d log lines about damaged records, want one:\n%s", n, logs)
	}
	for _, want := range []string{seg, fmt.Sprintf("offset=%d", first), fmt.Sprintf("damaged_records=%d", len(damage)+1), "crash of the machine"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	store := newMemStore()
	drain(t, ts.Spool, store)
	store.check(t)
	compare(t, store.shipped(), expect(t, recs, lost))
}

// TestDamagedHeader: a segment whose header is damaged is skipped whole
// and counted; the other segments ship. One written by a newer format
// is refused, not skipped: a newer databridge can still read it.
func TestDamagedHeader(t *testing.T) {
	dir, seg := writeSpool(t)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, data)
	seq, _ := parseSegmentName(filepath.Base(seg))
	bad := append([]byte(nil), data...)
	bad[20] ^= 1 // in the epoch: the header CRC fails
	if err := os.WriteFile(filepath.Join(dir, segmentName(seq+1)), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := openTestSpool(t, dir)
	if n := ts.metric(t, "databridge_spool_records_malformed_total", ""); n != 1 {
		t.Errorf("databridge_spool_records_malformed_total = %v, want 1", n)
	}
	if !strings.Contains(ts.logs.String(), "segment unreadable") {
		t.Errorf("log:\n%s", ts.logs)
	}
	store := newMemStore()
	drain(t, ts.Spool, store)
	compare(t, store.shipped(), expect(t, recs, nil))
	ts.Close()

	newer := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(newer[8:], formatVersion+1)
	putHeader(newer, header{version: formatVersion + 1, seq: seq + 100})
	path := filepath.Join(dir, segmentName(seq+100))
	if err := os.WriteFile(path, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "format version 2") {
		t.Errorf("Open of a spool with a newer segment: %v", err)
	}
}

// TestTornCopy: a kill in the middle of an in-place update leaves the
// other copy, and so the counts before that update.
func TestTornCopy(t *testing.T) {
	rec := make([]byte, evSize)
	c := counts{version: 6, c: [nCounts]int64{10, 1, 1, 100, 5}}
	writeCopy(rec, &c)
	c.version++
	c.c[0] += 4
	writeCopy(rec, &c)
	if got, ok := readCopy(rec); !ok || got != c {
		t.Fatalf("read %+v %v, want %+v", got, ok, c)
	}
	torn := append([]byte(nil), rec...)
	// Version 8 goes to copy A; the kill lands after its first counter.
	c8 := c
	c8.version++
	c8.c[0] += 2
	binary.LittleEndian.PutUint32(torn[evCopyA+cpVersion:], c8.version)
	binary.LittleEndian.PutUint64(torn[evCopyA+cpCounts:], uint64(c8.c[0]))
	if got, ok := readCopy(torn); !ok || got != c {
		t.Errorf("after a torn update read %+v %v, want version 7 %+v", got, ok, c)
	}
}
