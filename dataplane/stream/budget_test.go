package stream

import (
	"testing"
)

// countBudget grants up to left ticks in all, and remembers what it was asked.
type countBudget struct {
	left  int
	asked []int
}

func (b *countBudget) Take(n int) int {
	b.asked = append(b.asked, n)
	g := min(n, b.left)
	b.left -= g
	return g
}

func ticksOf(t *testing.T, v map[string]any) []string {
	t.Helper()
	var syms []string
	for _, tk := range v["ticks"].([]any) {
		syms = append(syms, tk.(map[string]any)["symbol"].(string))
	}
	return syms
}

func TestBudgetTrimsFramesAndKeepsTheRestDue(t *testing.T) {
	h := testHub()
	b := &countBudget{left: 2}
	s := NewSession(h, SessionConfig{ID: "s1", Budget: b})
	h.Attach(s)
	h.Subscribe(s, []string{"AUDUSD", "EURUSD", "USDJPY"}, []byte(`{"type":"subscribed"}`))
	drain(t, s)

	for _, sym := range []string{"AUDUSD", "EURUSD", "USDJPY"} {
		h.Publish(scored(sym, 1.1))
	}
	h.flush()
	msgs := drain(t, s)
	if len(msgs) != 1 {
		t.Fatalf("queued %v, want one frame", msgs)
	}
	if got := ticksOf(t, msgs[0]); len(got) != 2 || got[0] != "AUDUSD" || got[1] != "EURUSD" {
		t.Fatalf("a frame with a budget of 2 carried %v, want the first two of three symbols", got)
	}
	if len(b.asked) != 1 || b.asked[0] != 3 {
		t.Fatalf("the budget was asked %v, want [3]: the frame's news", b.asked)
	}

	// Nothing granted: no frame at all, and USDJPY stays due.
	h.flush()
	if msgs := drain(t, s); len(msgs) != 0 {
		t.Fatalf("a flush with an empty budget queued %v", msgs)
	}
	b.left = 10
	h.flush()
	msgs = drain(t, s)
	if len(msgs) != 1 {
		t.Fatalf("queued %v, want the frame left due", msgs)
	}
	if got := ticksOf(t, msgs[0]); len(got) != 1 || got[0] != "USDJPY" {
		t.Fatalf("the frame after the budget returned carried %v, want USDJPY", got)
	}
}

func TestBudgetTrimsSnapshotsAndRefreshSendsAFreshOne(t *testing.T) {
	h := testHub()
	for _, sym := range []string{"AUDUSD", "EURUSD", "USDJPY"} {
		h.Publish(scored(sym, 1.1))
	}
	h.flush()
	b := &countBudget{left: 1}
	s := NewSession(h, SessionConfig{ID: "s1", Budget: b})
	h.Attach(s)
	h.Subscribe(s, []string{"AUDUSD", "EURUSD", "USDJPY", "GBPUSD"}, []byte(`{"type":"subscribed"}`))
	msgs := drain(t, s)
	if len(msgs) != 2 || msgs[1]["type"] != "snapshot" {
		t.Fatalf("queued %v, want the reply and a snapshot", msgs)
	}
	if got := ticksOf(t, msgs[1]); len(got) != 1 || got[0] != "AUDUSD" {
		t.Fatalf("a snapshot with a budget of 1 carried %v", got)
	}
	// What the snapshot left out comes in the next frame, once granted.
	b.left = 5
	h.flush()
	msgs = drain(t, s)
	if len(msgs) != 1 {
		t.Fatalf("queued %v", msgs)
	}
	if got := ticksOf(t, msgs[0]); len(got) != 2 || got[0] != "EURUSD" || got[1] != "USDJPY" {
		t.Fatalf("the frame after a trimmed snapshot carried %v, want EURUSD and USDJPY", got)
	}

	// Refresh: every subscribed symbol with a value, again, as a snapshot.
	h.Refresh(s)
	msgs = drain(t, s)
	if len(msgs) != 1 || msgs[0]["type"] != "snapshot" {
		t.Fatalf("Refresh queued %v, want one snapshot", msgs)
	}
	if got := ticksOf(t, msgs[0]); len(got) != 3 {
		t.Fatalf("the fresh snapshot carried %v, want the three symbols with values", got)
	}
	h.flush()
	if msgs := drain(t, s); len(msgs) != 0 {
		t.Fatalf("a flush after a fresh snapshot with no news queued %v", msgs)
	}
}
