package server

import (
	"strings"
	"testing"
	"time"
)

func TestMeterResetsAtMidnightUTC(t *testing.T) {
	now := time.Date(2026, 11, 27, 23, 59, 59, 0, time.UTC)
	m := newMeter(func() time.Time { return now })
	record := m.recorder("t", "alice")
	m.apiCall("t", "alice")
	m.apiCall("t", "bob")
	record(30)
	record(10)
	if calls, points := m.tenant("t"); calls != 2 || points != 40 {
		t.Fatalf("tenant totals = %d calls, %d points; want 2, 40", calls, points)
	}
	if got, want := resetAt(now), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("resetAt = %v, want %v", got, want)
	}
	now = now.Add(2 * time.Second) // 00:00:01 the next day
	if calls, points := m.tenant("t"); calls != 0 || points != 0 {
		t.Fatalf("after midnight the totals are %d calls, %d points; want 0, 0", calls, points)
	}
	if n := m.apiCall("t", "alice"); n != 1 {
		t.Fatalf("first call of the new day counted as %d", n)
	}
	record(5)
	if _, points := m.tenant("t"); points != 5 {
		t.Fatalf("a session open across midnight counted %d points on the new day, want 5", points)
	}
}

func TestConnLimits(t *testing.T) {
	l := newConnLimits()
	steps := []struct {
		user    string
		acquire bool // false: release
		wantErr string
	}{
		{"alice", true, ""},
		{"alice", true, ""},
		{"alice", true, "user alice of acme already holds 2 of its 2 connections"},
		{"bob", true, ""},
		{"carol", true, "tenant acme already holds 3 of its 3 connections"},
		{"alice", false, ""},
		{"carol", true, ""},
	}
	for i, s := range steps {
		if !s.acquire {
			l.release("acme", s.user)
			continue
		}
		err := l.acquire("acme", s.user, 2, 3)
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("step %d: %s refused: %v", i, s.user, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
			t.Fatalf("step %d: %s got %v, want %q", i, s.user, err, s.wantErr)
		}
	}
	if n := l.tenant("acme"); n != 3 {
		t.Fatalf("acme holds %d connections, want 3", n)
	}
}
