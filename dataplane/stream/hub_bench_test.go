package stream

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/market"
)

// BenchmarkFlush measures one flush with every session receiving a frame of
// 5 changed symbols: the per-tick, per-subscriber cost of the hot path. The
// writer is simulated by releasing each frame, so buffers cycle through the
// pool as they do in production.
func BenchmarkFlush(b *testing.B) {
	symbols := catalog.Names()
	for _, subscribers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			h := NewHub(HubConfig{Tier: "enterprise", Interval: 10 * time.Millisecond, Level: market.Premium, Symbols: symbols})
			sessions := make([]*Session, subscribers)
			for i := range sessions {
				s := NewSession(h, SessionConfig{ID: fmt.Sprint(i)})
				h.Attach(s)
				h.Subscribe(s, fiveOf(symbols, i), nil)
				sessions[i] = s
			}
			ticks := benchTicks(symbols)
			release := func() {
				for _, s := range sessions {
					s.mu.Lock()
					for _, m := range s.out {
						putMsg(m)
					}
					s.out = s.out[:0]
					s.outBytes = 0
					s.inFlight = false
					s.mu.Unlock()
				}
			}
			release()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				publishAll(h, ticks)
				h.flush()
				b.StopTimer()
				release()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/subscriber")
		})
	}
}

// BenchmarkPublish measures taking in and encoding one tick for a tier.
func BenchmarkPublish(b *testing.B) {
	h := NewHub(HubConfig{Tier: "enterprise", Interval: 10 * time.Millisecond, Level: market.Premium, Symbols: catalog.Names()})
	t := market.Scored{
		Tick:    market.Tick{Symbol: "EURUSD", Bid: 1.08512, Ask: 1.08515, Time: time.Now(), Published: time.Now().UnixNano()},
		Quality: market.Quality{Level: market.Premium, MarketOpen: true, Score: 0.93, Liquidity: 0.8, Session: "london", Volatility: 0.00012},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.Publish(&t)
	}
}

// BenchmarkFlushToSockets measures a flush that writes its frames to real
// loopback sockets, as in production: building the frames, one non-blocking
// write per idle session, and the accounting after it. The clients read in
// this process too, so the time per frame includes the kernel's send and
// receive paths of both ends.
func BenchmarkFlushToSockets(b *testing.B) {
	symbols := catalog.Names()
	for _, subscribers := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			h := NewHub(HubConfig{Tier: "enterprise", Interval: 10 * time.Millisecond, Level: market.Premium, Symbols: symbols})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			sessions := make([]*Session, subscribers)
			for i := range sessions {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				go func() { _, _ = io.Copy(io.Discard, c) }()
				sc, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				s := NewSession(h, SessionConfig{ID: fmt.Sprint(i)})
				h.Attach(s)
				s.Start(sc)
				defer s.Stop()
				h.Subscribe(s, fiveOf(symbols, i), nil)
				sessions[i] = s
			}
			ticks := benchTicks(symbols)
			written := func() bool {
				for _, s := range sessions {
					if s.framePending() {
						return false
					}
				}
				return true
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				publishAll(h, ticks)
				h.flush()
				for !written() { // a frame a full socket held back
					time.Sleep(10 * time.Microsecond)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/frame")
		})
	}
}

// benchTicks returns one Premium tick of each symbol.
func benchTicks(symbols []string) []market.Scored {
	ticks := make([]market.Scored, len(symbols))
	for i, sym := range symbols {
		ticks[i] = market.Scored{
			Tick:    market.Tick{Symbol: sym, Bid: 1.1, Ask: 1.1002, Time: time.Now(), Published: time.Now().UnixNano(), Ingested: time.Now().UnixNano()},
			Quality: market.Quality{Level: market.Premium, MarketOpen: true, Score: 0.93, Liquidity: 0.8, Session: "london", Volatility: 0.00012},
		}
	}
	return ticks
}

// fiveOf is subscriber i's five of the first 28 symbols (the majors), spread
// so that subscribers overlap as real clients do.
func fiveOf(symbols []string, i int) []string {
	return []string{symbols[i%28], symbols[(i+3)%28], symbols[(i+7)%28], symbols[(i+11)%28], symbols[(i+19)%28]}
}

// publishAll moves every tick's price a little and publishes it.
func publishAll(h *Hub, ticks []market.Scored) {
	for j := range ticks {
		ticks[j].Bid += 0.00001
		h.Publish(&ticks[j])
	}
}
