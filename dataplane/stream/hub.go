package stream

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/protocol"
)

// HubConfig configures one tier's hub.
type HubConfig struct {
	// Tier names the tier in frames and metrics.
	Tier string
	// Interval is the conflation window: a session receives at most one frame
	// per interval. Zero means one second.
	Interval time.Duration
	// Level is the tier's data quality, named in every frame.
	Level market.Level
	// Symbols is every symbol the hub carries (the catalogue); ticks of other
	// symbols are refused by Publish.
	Symbols []string
	// StepDownAfter is how many flushes in a row a session may still be
	// writing its previous frame before its interval doubles. Zero means 3.
	StepDownAfter int
	// MaxStepDowns is how many times a session's interval may double before a
	// session that still falls behind is closed with slow_consumer. Zero means 5
	// (32 times the tier's interval).
	MaxStepDowns int
	// StepUpAfter is how many frames in a row a stepped-down session must take
	// on time before its interval halves again. Zero means 100.
	StepUpAfter int
	// Metrics receives the hub's metrics. Nil means a private, unregistered set.
	Metrics *Metrics
	// WriterOnly hands every frame to its session's writer goroutine. By
	// default (false) a flush writes an idle session's frame to its socket
	// itself, which costs less per frame (docs/benchmarks.md compares both).
	WriterOnly bool
}

// Hub holds the latest value of each symbol of one tier and flushes them to
// its sessions once per interval. Each tick is encoded once, when it is
// published; a flush copies those bytes into one frame per session that has
// news, so per subscriber per flush nothing is allocated or encoded.
//
// One mutex guards the slots and every session's subscriptions: publish,
// subscribe and flush are short, and holding it while a subscribe reply and
// its snapshot are queued keeps them ordered before any later frame.
type Hub struct {
	cfg     HubConfig
	m       *tierMetrics
	index   map[string]int32
	headers [][]byte // per step-down: `{"type":"market_data","tier_applied":{...},"seq":`
	closing []byte   // the fatal slow_consumer error, encoded once

	mu       sync.Mutex
	slots    []slot
	sessions []*Session
	flushes  uint64
	dropped  uint64 // ticks the tier's quality checks dropped, ever

	ready []direct // frames the flush writes itself; owned by the flushing goroutine
}

// direct is a frame the hub writes to an idle session's socket itself.
type direct struct {
	s *Session
	m *msg
}

// slot is one symbol's latest value.
type slot struct {
	seq     uint64 // ticks of this symbol accepted so far; the latest has this seq
	flushed uint64 // seq at the previous flush
	origin  int64  // when the latest tick was published by the feed (else ingested), Unix ns
	enc     []byte // the latest tick, encoded for this tier
}

// sub is one subscribed symbol of a session: which slot, and the seq the
// session last received.
type sub struct {
	slot int32
	seq  uint64
}

// NewHub returns a hub for one tier. Run it with Run.
func NewHub(cfg HubConfig) *Hub {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.StepDownAfter <= 0 {
		cfg.StepDownAfter = 3
	}
	if cfg.MaxStepDowns <= 0 {
		cfg.MaxStepDowns = 5
	}
	if cfg.StepUpAfter <= 0 {
		cfg.StepUpAfter = 100
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	h := &Hub{
		cfg:   cfg,
		m:     cfg.Metrics.forTier(cfg.Tier),
		index: make(map[string]int32, len(cfg.Symbols)),
		slots: make([]slot, len(cfg.Symbols)),
	}
	for i, s := range cfg.Symbols {
		h.index[s] = int32(i)
	}
	// tier_applied names the interval the session actually gets, which is
	// the tier's unless the session was stepped down.
	for step := 0; step <= cfg.MaxStepDowns; step++ {
		h.headers = append(h.headers, fmt.Appendf(nil, `{"type":"market_data","tier_applied":{"tier":%s,"update_interval_ms":%s,"data_quality":"%s"},"seq":`,
			strconv.Quote(cfg.Tier), strconv.FormatFloat(float64(cfg.Interval<<step)/float64(time.Millisecond), 'f', -1, 64), cfg.Level))
	}
	h.closing = encode(protocol.Error{Type: protocol.TypeError, Code: protocol.CodeSlowConsumer, Fatal: true,
		Message: "the connection reads too slowly to keep up even at the slowest interval; closing. Read faster or subscribe to fewer symbols"})
	return h
}

// Tier returns the hub's tier name.
func (h *Hub) Tier() string { return h.cfg.Tier }

// Interval returns the hub's conflation window.
func (h *Hub) Interval() time.Duration { return h.cfg.Interval }

// Level returns the tier's data quality.
func (h *Hub) Level() market.Level { return h.cfg.Level }

// Carries reports whether the hub has a slot for symbol.
func (h *Hub) Carries(symbol string) bool {
	_, ok := h.index[symbol]
	return ok
}

// Publish makes t the latest value of its symbol. It reports false for a
// symbol the hub does not carry. Call it from one goroutine per hub (the
// tier's ingest), after the tier's quality checks.
func (h *Hub) Publish(t *market.Scored) bool {
	i, ok := h.index[t.Symbol]
	if !ok {
		return false
	}
	h.mu.Lock()
	sl := &h.slots[i]
	if sl.seq > sl.flushed {
		h.m.conflated.Inc()
	}
	sl.seq++
	sl.enc = appendTick(sl.enc[:0], t, sl.seq)
	// The SLA's clock starts at the feed's publish time, so that lag behind
	// the tick stream counts; a tick without one starts at ingest.
	sl.origin = cmp.Or(t.Published, t.Ingested)
	h.mu.Unlock()
	h.m.accepted.Inc()
	return true
}

// Dropped records n ticks that the tier's quality checks dropped; frames
// report them in filter_stats.
func (h *Hub) Dropped(n uint64) {
	h.mu.Lock()
	h.dropped += n
	h.mu.Unlock()
}

// CountClosed counts a session the data plane closed with an error code
// (suspended, tier_changed, unauthorized) in the tier's metrics; the hub
// counts its own slow_consumer closes.
func (h *Hub) CountClosed(code string) { h.m.sessionClosed(code) }

// Attach adds a session to the hub. It receives nothing until it subscribes.
func (h *Hub) Attach(s *Session) {
	h.mu.Lock()
	s.hubIndex = len(h.sessions)
	s.droppedSeen = h.dropped
	now := time.Now()
	s.nextPing = now.Add(s.cfg.PingInterval)
	s.nextPeriodic = now.Add(s.cfg.PeriodicInterval)
	h.sessions = append(h.sessions, s)
	h.mu.Unlock()
	h.m.connections.Inc()
}

// Detach removes a session from the hub.
func (h *Hub) Detach(s *Session) {
	h.mu.Lock()
	i := s.hubIndex
	if i < 0 || i >= len(h.sessions) || h.sessions[i] != s {
		h.mu.Unlock()
		return
	}
	last := len(h.sessions) - 1
	h.sessions[i] = h.sessions[last]
	h.sessions[i].hubIndex = i
	h.sessions[last] = nil
	h.sessions = h.sessions[:last]
	s.hubIndex = -1
	h.mu.Unlock()
	h.m.connections.Dec()
}

// Sessions returns the sessions attached to the hub.
func (h *Hub) Sessions() []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Session, len(h.sessions))
	copy(out, h.sessions)
	return out
}

// Subscribe adds symbols (which the caller checked: carried and entitled) to
// the session, then queues reply followed by a snapshot of the latest value
// of each added symbol that has one. Frames after the snapshot carry only
// newer values.
func (h *Hub) Subscribe(s *Session, symbols []string, reply []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	added := h.addSubs(s, symbols)
	s.enqueue(newMsg(reply))
	h.snapshot(s, added)
}

// addSubs adds the symbols the session does not have yet and returns their
// slots (under h.mu); each starts as seen up to the slot's current value,
// which its snapshot delivers.
func (h *Hub) addSubs(s *Session, symbols []string) []int32 {
	added := make([]int32, 0, len(symbols))
	for _, sym := range symbols {
		i, ok := h.index[sym]
		if !ok || s.subscribed(i) {
			continue
		}
		s.addSub(sub{slot: i, seq: h.slots[i].seq})
		added = append(added, i)
	}
	return added
}

// snapshot queues a snapshot of the latest value of each of slots that has
// one, as far as the session's budget grants (under h.mu). A value the
// budget leaves out is marked unseen, so a later frame delivers it.
func (h *Hub) snapshot(s *Session, slots []int32) {
	n := 0
	for _, i := range slots {
		if h.slots[i].seq > 0 {
			n++
		}
	}
	granted := n
	if n > 0 && s.cfg.Budget != nil {
		granted = s.cfg.Budget.Take(n)
	}
	m := getMsg()
	m.built = time.Now().UnixNano()
	b := append(m.buf[:maxHeader], `{"type":"snapshot","ticks":[`...)
	k := 0
	for _, i := range slots {
		sl := &h.slots[i]
		if sl.seq == 0 {
			continue
		}
		if k == granted {
			s.subs[s.subIndex(i)].seq = 0
			continue
		}
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, sl.enc...)
		s.subs[s.subIndex(i)].seq = sl.seq
		k++
	}
	m.buf = append(b, "]}"...)
	m.ticks = k
	if k == 0 {
		putMsg(m)
		return
	}
	s.enqueue(m)
}

// Refresh queues a fresh snapshot of every symbol the session is subscribed
// to, as far as its budget grants: what a session gets when it may receive
// data again (its quota was reset) after a pause.
func (h *Hub) Refresh(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	slots := make([]int32, len(s.subs))
	for k, su := range s.subs {
		slots[k] = su.slot
	}
	h.snapshot(s, slots)
}

// Unsubscribe removes symbols from the session and queues reply.
func (h *Hub) Unsubscribe(s *Session, symbols []string, reply []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sym := range symbols {
		if i, ok := h.index[sym]; ok {
			s.removeSub(i)
		}
	}
	s.enqueue(newMsg(reply))
}

// Run flushes every interval, and once a second asks sessions' writers for
// their pings and usage messages, until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	house := time.NewTicker(time.Second)
	defer house.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.flush()
		case now := <-house.C:
			h.housekeep(now)
		}
	}
}

// housekeep sets the ping and periodic tasks of the sessions that are due.
func (h *Hub) housekeep(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		var tasks uint32
		if !now.Before(s.nextPing) {
			s.nextPing = now.Add(s.cfg.PingInterval)
			tasks |= taskPing
		}
		if s.cfg.PeriodicInterval > 0 && !now.Before(s.nextPeriodic) {
			s.nextPeriodic = now.Add(s.cfg.PeriodicInterval)
			tasks |= taskPeriodic
		}
		if tasks != 0 {
			s.addTasks(tasks)
		}
	}
}

// flush builds one frame for each session that has news and is not still
// writing its previous frame, then writes those of idle sessions to their
// sockets (the rest are queued for the sessions' writers). A session that
// keeps falling behind is stepped down (it is flushed every 2nd, 4th, ...
// time) and, past MaxStepDowns, closed. Values a skipped session missed are
// not lost: its next frame carries the latest of each.
func (h *Hub) flush() {
	start := time.Now()
	h.build()
	writeFrames(h.ready)
	clear(h.ready)
	h.ready = h.ready[:0]
	took := time.Since(start)
	h.m.flush.Observe(took.Seconds())
	if took > h.cfg.Interval {
		h.m.lateFlushes.Inc()
	}
}

// minPerWriter is the fewest frames worth a goroutine of their own: below
// it, starting one costs more than the writes it would take over.
const minPerWriter = 64

// writeFrames writes frames to their sockets, spread over as many
// goroutines as there are processors, and returns when all are written or
// handed to their sessions' writers. Writing never waits for a client.
func writeFrames(ready []direct) {
	writers := min(runtime.GOMAXPROCS(0), len(ready)/minPerWriter)
	if writers <= 1 {
		writeSome(ready)
		return
	}
	var wg sync.WaitGroup
	per := (len(ready) + writers - 1) / writers
	for len(ready) > per {
		wg.Add(1)
		go func(part []direct) {
			defer wg.Done()
			writeSome(part)
		}(ready[:per])
		ready = ready[per:]
	}
	writeSome(ready)
	wg.Wait()
}

func writeSome(ready []direct) {
	for _, d := range ready {
		d.s.writeDirect(d.m)
	}
}

// build is the part of a flush under the hub's lock: it builds the frames
// and queues them or collects them in h.ready.
func (h *Hub) build() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flushes++
	for _, s := range h.sessions {
		if s.stepMask != 0 && h.flushes&s.stepMask != 0 {
			continue
		}
		news := h.news(s)
		if news == 0 {
			continue
		}
		pending, ended := s.flushState()
		if ended {
			continue // its reader will detach it
		}
		if pending {
			h.fellBehind(s)
			continue
		}
		s.behind = 0
		if s.cfg.Budget != nil {
			if news = s.cfg.Budget.Take(news); news == 0 {
				continue // nothing granted: the values stay due
			}
		}
		h.frame(s, news)
		if s.step > 0 {
			if s.onTime++; s.onTime >= h.cfg.StepUpAfter {
				s.onTime = 0
				s.step--
				s.stepMask = 1<<s.step - 1
			}
		}
	}
	for i := range h.slots {
		h.slots[i].flushed = h.slots[i].seq
	}
}

// news counts the session's symbols with a value it has not received.
func (h *Hub) news(s *Session) int {
	n := 0
	for _, su := range s.subs {
		if h.slots[su.slot].seq > su.seq {
			n++
		}
	}
	return n
}

// frame builds and queues one market_data frame for s with at most max of
// its news (in symbol order); the rest stays due.
func (h *Hub) frame(s *Session, max int) {
	m := getMsg()
	m.built = time.Now().UnixNano()
	s.frameSeq++
	b := append(m.buf[:maxHeader], h.headers[s.step]...)
	b = strconv.AppendUint(b, s.frameSeq, 10)
	b = append(b, `,"ticks":[`...)
	var n int
	var superseded uint64
	for i := range s.subs {
		su := &s.subs[i]
		sl := &h.slots[su.slot]
		if sl.seq <= su.seq {
			continue
		}
		if n == max {
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, sl.enc...)
		superseded += sl.seq - su.seq - 1
		su.seq = sl.seq
		m.origins = append(m.origins, sl.origin)
		n++
	}
	b = append(b, `],"filter_stats":{"superseded":`...)
	b = strconv.AppendUint(b, superseded, 10)
	b = append(b, `,"dropped":`...)
	b = strconv.AppendUint(b, h.dropped-s.droppedSeen, 10)
	s.droppedSeen = h.dropped
	m.buf = append(b, "}}"...)
	m.ticks = n
	if s.offerFrame(m) {
		h.ready = append(h.ready, direct{s, m})
	}
}

// fellBehind handles a session still writing its previous frame when its
// next one is due.
func (h *Hub) fellBehind(s *Session) {
	s.onTime = 0
	s.behind++
	if s.behind < h.cfg.StepDownAfter {
		return
	}
	s.behind = 0
	if s.step >= h.cfg.MaxStepDowns {
		if s.Close(protocol.CloseSlowConsumer, h.closing) {
			h.m.slowClosed.Inc()
			h.m.sessionClosed(string(protocol.CodeSlowConsumer))
		}
		return
	}
	s.step++
	s.stepMask = 1<<s.step - 1
	h.m.stepDowns.Inc()
	interval := h.cfg.Interval * time.Duration(1<<s.step)
	s.enqueue(newMsg(encode(protocol.Error{
		Type: protocol.TypeError, Code: protocol.CodeSlowConsumer, Fatal: false,
		UpdateIntervalMS: float64(interval) / float64(time.Millisecond),
		Message: fmt.Sprintf("the connection reads too slowly for %s updates; stepped down to %s. "+
			"Read faster or subscribe to fewer symbols", h.cfg.Interval, interval),
	})))
}
