package ticks

import (
	"strings"
	"testing"
	"time"
)

func TestParseID(t *testing.T) {
	good := map[string]entryID{
		"0-0":                   {0, 0},
		"1718000000000-5":       {1718000000000, 5},
		"9223372036854775807-0": {1<<63 - 1, 0},
		"1-9223372036854775807": {1, 1<<63 - 1},
	}
	for s, want := range good {
		got, err := parseID(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("parseID(%q) = %v (%q), %v; want %v", s, got, got.String(), err, want)
		}
	}
	for _, s := range []string{"", "1", "1-", "-1", "a-1", "1-b", "+1-0", "1--1", "9223372036854775808-0", "1-2-3"} {
		if _, err := parseID(s); err == nil || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("parseID(%q) = %v, want an error naming it", s, err)
		}
	}
	if (entryID{9, 5}).compare(entryID{10, 0}) >= 0 || (entryID{9, 5}).compare(entryID{9, 10}) >= 0 ||
		(entryID{3, 3}).compare(entryID{3, 3}) != 0 {
		t.Error("entry IDs do not compare as numbers")
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, p := range []position{
		{timeNs: 1399507200059000000, stream: "databridge:ticks", id: entryID{1399507200059, 3}},
		{timeNs: 1, stream: "a.b.c", id: entryID{0, 0}}, // dots in the stream name
	} {
		c := p.cursor()
		if strings.ContainsAny(c, "+/=&?") {
			t.Errorf("cursor %q is not URL-safe", c)
		}
		got, err := parseCursor(c)
		if err != nil || got != p {
			t.Errorf("parseCursor(%q) = %+v, %v; want %+v", c, got, err, p)
		}
	}
	for _, c := range []string{"x", "MQ", "Mi4xLjIuMy5z" /* version 2 */, "MS4xLjIuMy4" /* no stream */} {
		if _, err := parseCursor(c); err == nil {
			t.Errorf("parseCursor(%q) accepted", c)
		}
	}
}

func TestDayStart(t *testing.T) {
	at := time.Date(2024, 6, 10, 3, 0, 0, 0, time.FixedZone("UTC+5", 5*3600)) // 22:00 UTC the day before
	if got := time.Unix(0, dayStart(at)).UTC(); !got.Equal(time.Date(2024, 6, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("dayStart(%s) = %s, want the start of its UTC day", at, got)
	}
	if got := dayStart(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)); got != 1 {
		t.Errorf("dayStart(1900) = %d, want the earliest time a store holds", got)
	}
}
