// Package fakeplane is a scripted stand-in for a tier's /v1/stream
// endpoint, speaking the same messages in the same encoding, so the load
// tester's verdicts can be tested against faults the real data plane must
// never produce (a lost frame, a wrong filter_stats).
package fakeplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/databridge-io/databridge/dataplane/protocol"
)

// Server serves one WebSocket stream per connection. Its zero value with a
// Key is a well-behaved tier.
type Server struct {
	// Key is the one API key accepted; others are refused with 4001 after
	// the upgrade, as the data plane does.
	Key string
	// Interval is the time between frames. Zero means 5ms.
	Interval time.Duration
	// SkipFrame, if non-zero, is a frame seq that is counted but never
	// sent, on every connection: a lost frame.
	SkipFrame uint64
	// Superseded is how many ticks of each symbol are conflated away
	// between two frames; each tick's seq jumps by Superseded+1.
	Superseded uint64
	// MisreportSuperseded makes filter_stats.superseded say 0 whatever the
	// seq jumps were.
	MisreportSuperseded bool
	// SlowConsumerAfter, if non-zero, ends each connection after that many
	// frames with a fatal slow_consumer error and close 4008.
	SlowConsumerAfter uint64
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// ServeHTTP upgrades the request and runs the script until the client goes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	if r.Header.Get("Authorization") != "Bearer "+s.Key {
		s.fatal(ws, protocol.CloseUnauthorized, protocol.CodeUnauthorized, "unknown API key")
		return
	}
	_ = ws.WriteJSON(protocol.Welcome{Type: protocol.TypeWelcome, Protocol: protocol.Version, Tier: "fake", DataQuality: "premium"})
	var req protocol.Request
	if ws.ReadJSON(&req) != nil || req.Type != protocol.TypeSubscribe {
		return
	}
	_ = ws.WriteJSON(protocol.Subscribed{Type: protocol.TypeSubscribed, ID: req.ID, Accepted: req.Symbols,
		Refused: []protocol.Refusal{}, Subscriptions: req.Symbols})

	// Every symbol starts with a snapshot tick at seq 1, so the first
	// frame's jumps are counted from it.
	seqs := make([]uint64, len(req.Symbols))
	snap := []byte(`{"type":"snapshot","ticks":[`)
	for i, sym := range req.Symbols {
		seqs[i] = 1
		if i > 0 {
			snap = append(snap, ',')
		}
		snap = appendTick(snap, sym, 1, time.Now())
	}
	snap = append(snap, "]}"...)
	_ = ws.WriteMessage(websocket.TextMessage, snap)

	// The client only closes; a reader notices.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}()

	interval := s.Interval
	if interval <= 0 {
		interval = 5 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var frameSeq uint64
	for {
		select {
		case <-gone:
			return
		case <-t.C:
		}
		frameSeq++
		if s.SlowConsumerAfter > 0 && frameSeq > s.SlowConsumerAfter {
			s.fatal(ws, protocol.CloseSlowConsumer, protocol.CodeSlowConsumer, "the connection reads too slowly")
			return
		}
		b := []byte(`{"type":"market_data","tier_applied":{"tier":"fake","update_interval_ms":5,"data_quality":"premium"},"seq":`)
		b = strconv.AppendUint(b, frameSeq, 10)
		b = append(b, `,"ticks":[`...)
		var superseded uint64
		now := time.Now()
		for i, sym := range req.Symbols {
			seqs[i] += s.Superseded + 1
			superseded += s.Superseded
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTick(b, sym, seqs[i], now)
		}
		if s.MisreportSuperseded {
			superseded = 0
		}
		b = fmt.Appendf(b, `],"filter_stats":{"superseded":%d,"dropped":0}}`, superseded)
		if frameSeq == s.SkipFrame {
			continue
		}
		if ws.WriteMessage(websocket.TextMessage, b) != nil {
			return
		}
	}
}

// appendTick encodes a Premium tick the way dataplane/stream does.
func appendTick(b []byte, sym string, seq uint64, now time.Time) []byte {
	b = append(b, `{"symbol":"`...)
	b = append(b, sym...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"bid":1.0841,"ask":1.0843,"time":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","published_us":`...)
	b = strconv.AppendInt(b, now.UnixMicro(), 10)
	return append(b, `,"market_open":true,"score":0.9000,"liquidity":0.5000,"session":"london","volatility":0.0001}`...)
}

func (s *Server) fatal(ws *websocket.Conn, closeCode int, code protocol.Code, msg string) {
	e, _ := json.Marshal(protocol.Error{Type: protocol.TypeError, Code: code, Message: msg, Fatal: true})
	_ = ws.WriteMessage(websocket.TextMessage, e)
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, string(code)), time.Now().Add(time.Second))
}

// URL turns an httptest server's http:// URL into the ws:// URL of the
// stream endpoint.
func URL(httpURL string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http") + "/v1/stream"
}
