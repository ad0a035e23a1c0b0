package feed

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	valid := []string{
		"2014-05-08T11:45:00.041Z",
		"2014-05-08T11:45:00Z",
		"2014-05-08T11:45:00.1Z",
		"2014-05-08T11:45:00.123456789Z",
		"2012-02-29T23:59:59.999Z",
		"2000-02-29T00:00:00Z",
		"1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.5Z",
		"2014-05-08T13:45:00.041+02:00",
		"2014-05-08T06:15:00.041-05:30",
		"2262-04-11T00:00:00Z",
		"1700-03-01T00:00:00Z",
	}
	for _, s := range valid {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("time.Parse(%q): %v", s, err)
		}
		sec, nsec, ok := parseTime([]byte(s))
		if !ok {
			t.Errorf("parseTime(%q) refused it", s)
			continue
		}
		if got := time.Unix(sec, int64(nsec)); !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, want %v", s, got.UTC(), want.UTC())
		}
	}
	invalid := []string{
		"",
		"2014-05-08",
		"2014-05-08T11:45:00",             // no zone
		"2014-05-08T11:45:00.041",         // no zone
		"2014-05-08 11:45:00Z",            // space
		"2014-05-08T11:45:00.Z",           // empty fraction
		"2014-05-08T11:45:00.0000000001Z", // ten fraction digits
		"2014-13-08T11:45:00Z",
		"2014-00-08T11:45:00Z",
		"2013-02-29T11:45:00Z",
		"1900-02-29T11:45:00Z",
		"2014-04-31T11:45:00Z",
		"2014-05-00T11:45:00Z",
		"2014-05-08T24:00:00Z",
		"2014-05-08T11:60:00Z",
		"2014-05-08T11:45:60Z",
		"2014-05-08T11:45:00+0200",
		"2014-05-08T11:45:00+24:00",
		"2014-05-08T11:45:00ZZ",
		"2014-05-08T11:45:00z",
		"2014-05-08t11:45:00Z",
		"20a4-05-08T11:45:00Z",
		"2014-05-08T11:45:00.04aZ",
		"9999-12-31T23:59:59Z", // beyond Unix nanoseconds
		"1600-01-01T00:00:00Z",
	}
	for _, s := range invalid {
		if sec, nsec, ok := parseTime([]byte(s)); ok {
			t.Errorf("parseTime(%q) = %v, want refused", s, time.Unix(sec, int64(nsec)).UTC())
		}
	}
}

// FuzzParseTime holds parseTime to time.Parse: whatever it accepts, the
// standard library accepts too, as the same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2014-05-08T11:45:00.041Z", "2014-05-08T13:45:00+02:00", "2000-02-29T00:00:00.123456789Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sec, nsec, ok := parseTime([]byte(s))
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("parseTime accepted %q, time.Parse refused it: %v", s, err)
		}
		if got := time.Unix(sec, int64(nsec)); !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v, time.Parse = %v", s, got.UTC(), want.UTC())
		}
	})
}

func BenchmarkParseTime(b *testing.B) {
	b.ReportAllocs()
	in := []byte("2014-05-08T11:45:00.041Z")
	for b.Loop() {
		if _, _, ok := parseTime(in); !ok {
			b.Fatal("refused")
		}
	}
}
