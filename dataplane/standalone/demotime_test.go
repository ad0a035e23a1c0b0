package standalone

import (
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/quality"
)

func TestDemoTimeOffset(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		now  string
		want time.Duration
	}{
		{"2026-11-27T06:00:00Z", 0},                             // Friday morning: open
		{"2026-11-27T21:59:59Z", 0},                             // a second before the close
		{"2026-11-27T22:00:00Z", 10 * time.Hour},                // Friday close: back to 12:00
		{"2026-11-28T15:30:00Z", 27*time.Hour + 30*time.Minute}, // Saturday
		{"2026-11-29T21:59:00Z", 57*time.Hour + 59*time.Minute}, // Sunday before the open
		{"2026-11-29T22:00:00Z", 0},                             // Sunday open
	}
	for _, tc := range cases {
		now := utc(tc.now)
		got := DemoTimeOffset(now)
		if got != tc.want {
			t.Errorf("DemoTimeOffset(%s) = %v, want %v", tc.now, got, tc.want)
		}
		if !quality.MarketOpen(now.Add(-got)) {
			t.Errorf("%s shifted by %v is still outside market hours", tc.now, got)
		}
	}
}
