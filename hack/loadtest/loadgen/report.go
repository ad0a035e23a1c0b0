package loadgen

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteText writes res as a table for people to read.
func WriteText(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(tw, "databridge loadtest %s\n", res.URL)
	subs := fmt.Sprintf("%d symbols each", res.SymbolsPerClient)
	if res.Idle {
		subs = "idle"
	}
	p("clients", "%d connected of %d (%s) in %s", res.Connected, res.Clients, subs, seconds(res.ConnectSeconds))
	window := fmt.Sprintf("%s after %s warmup", seconds(res.WindowSeconds), seconds(res.WarmupSeconds))
	if res.Interrupted {
		window += " (interrupted)"
	}
	p("window", "%s", window)
	p("frames/s", "%s", group(res.FramesPerSecond))
	p("ticks/s", "%s delivered, %s superseded", group(res.TicksPerSecond), group(res.SupersededPerSecond))
	l := res.Latency
	p("latency", "p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  (%s samples)",
		l.P50MS, l.P99MS, l.P999MS, l.MaxMS, group(float64(l.Samples)))
	if l.Unpublished > 0 {
		p("", "%s ticks without published_us had no latency", group(float64(l.Unpublished)))
	}
	switch s := res.Server; {
	case s == nil:
		p("server", "not measured (give --server-pid)")
	case s.Error != "":
		p("server", "pid %d: %s", s.PID, s.Error)
	default:
		p("server cpu", "%.2f cores (pid %d)", s.CPUCores, s.PID)
		p("server rss", "%s total, %s before connecting, %s per connection",
			bytesIEC(float64(s.RSSEndBytes)), bytesIEC(float64(s.RSSBeforeBytes)), bytesIEC(s.RSSPerConnectionBytes))
	}
	switch m := res.Machine; {
	case m == nil:
	case m.Error != "":
		p("machine", "not measured: %s", m.Error)
	default:
		p("load tool cpu", "%.2f cores (this process)", m.LoadToolCores)
		p("machine cpu", "%.2f of %d cores busy (server, load tool, feed, Redis and kernel together)", m.BusyCores, m.CPUs)
	}
	fmt.Fprintln(tw, "checks")
	for _, v := range res.Verdicts {
		mark := "PASS"
		if !v.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(tw, "  %s %s\t%s\n", mark, v.Check, v.Detail)
	}
	if res.Pass {
		fmt.Fprintln(tw, "RESULT: PASS")
	} else {
		fmt.Fprintln(tw, "RESULT: FAIL")
	}
	return tw.Flush()
}

// seconds formats a number of seconds as a Duration to the millisecond.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// group formats v rounded to an integer with thousands separators, because
// 100234 frames/s is misread far more often than 100,234.
func group(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// bytesIEC formats a byte count in KiB, MiB or GiB.
func bytesIEC(b float64) string {
	const unit = 1024
	abs := b
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs >= unit*unit*unit:
		return fmt.Sprintf("%.2f GiB", b/(unit*unit*unit))
	case abs >= unit*unit:
		return fmt.Sprintf("%.1f MiB", b/(unit*unit))
	case abs >= unit:
		return fmt.Sprintf("%.1f KiB", b/unit)
	}
	return fmt.Sprintf("%.0f B", b)
}
