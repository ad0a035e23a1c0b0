package quality

import "time"

// Trading sessions reported in market.Quality.Session (see SessionAt).
const (
	// SessionSydney is 21:00-06:00 UTC.
	SessionSydney = "sydney"
	// SessionTokyo is 00:00-09:00 UTC.
	SessionTokyo = "tokyo"
	// SessionLondon is 07:00-16:00 UTC.
	SessionLondon = "london"
	// SessionNewYork is 12:00-21:00 UTC.
	SessionNewYork = "new_york"
	// SessionClosed is the session while the FX market is closed.
	SessionClosed = "closed"
)

const (
	secondsPerDay = 86400
	// weekClose and weekOpen are the seconds into Friday and Sunday (UTC) at
	// which the FX week ends and starts. Real venues follow New York
	// daylight saving (22:00 UTC in summer, 21:00 in winter); the product
	// promises a fixed 22:00 UTC so that a tier's behaviour never shifts with
	// the season.
	weekClose = 22 * 3600
	weekOpen  = 22 * 3600
)

// dayAndWeekday splits Unix seconds into the second of the UTC day and the
// weekday (0 = Sunday), without time.Time's calendar work.
func dayAndWeekday(sec int64) (secOfDay int64, weekday int64) {
	days := sec / secondsPerDay
	secOfDay = sec % secondsPerDay
	if secOfDay < 0 {
		days--
		secOfDay += secondsPerDay
	}
	// 1970-01-01 was a Thursday.
	weekday = (days + 4) % 7
	if weekday < 0 {
		weekday += 7
	}
	return secOfDay, weekday
}

func marketOpenSec(sec int64) bool {
	secOfDay, wd := dayAndWeekday(sec)
	switch time.Weekday(wd) {
	case time.Friday:
		return secOfDay < weekClose
	case time.Saturday:
		return false
	case time.Sunday:
		return secOfDay >= weekOpen
	}
	return true
}

// MarketOpen reports whether the FX market is open at t: it is closed from
// Friday 22:00 UTC to Sunday 22:00 UTC. Holidays are not modelled.
func MarketOpen(t time.Time) bool { return marketOpenSec(floorSec(t.UnixNano())) }

// floorSec converts Unix nanoseconds to whole seconds, rounding down so that
// 21:59:59.999 stays in the 21:59:59 second.
func floorSec(ns int64) int64 {
	s := ns / 1e9
	if ns%1e9 < 0 {
		s--
	}
	return s
}

// Session hours in UTC, [open, close) in hours of the day.
//
//	sydney   21:00-06:00
//	tokyo    00:00-09:00
//	london   07:00-16:00
//	new_york 12:00-21:00
//
// When sessions overlap, the one with the most FX turnover is reported:
// london, then new_york, then tokyo, then sydney. So the London/New York
// overlap (12:00-16:00), the busiest hours of the day, reports london.
func sessionSec(sec int64) string {
	if !marketOpenSec(sec) {
		return SessionClosed
	}
	secOfDay, _ := dayAndWeekday(sec)
	h := secOfDay / 3600
	switch {
	case h >= 7 && h < 16:
		return SessionLondon
	case h >= 12 && h < 21:
		return SessionNewYork
	case h < 9:
		return SessionTokyo
	default: // 21:00-24:00; 06:00-07:00 is Tokyo's
		return SessionSydney
	}
}

// SessionAt returns the most liquid trading session open at t, or
// SessionClosed when the market is closed.
func SessionAt(t time.Time) string { return sessionSec(floorSec(t.UnixNano())) }
