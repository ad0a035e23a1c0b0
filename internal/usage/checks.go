package usage

import (
	"fmt"
	"time"
)

// The minutes a store can hold: ClickHouse's DateTime is unsigned 32-bit
// seconds, so both stores refuse what one of them could not keep.
var (
	minMinute = time.Unix(0, 0).UTC()
	maxMinute = time.Unix(1<<32-60, 0).UTC().Truncate(time.Minute)
)

// checkMinute says what is wrong with a record's Minute, if anything.
func checkMinute(m time.Time) error {
	switch {
	case m.IsZero():
		return fmt.Errorf("minute is not set; set it to the UTC minute the record is about")
	case !m.Truncate(time.Minute).Equal(m):
		return fmt.Errorf("minute %s is not a whole minute; truncate it with .UTC().Truncate(time.Minute)",
			m.UTC().Format(time.RFC3339Nano))
	case m.Before(minMinute) || m.After(maxMinute):
		return fmt.Errorf("minute %s is outside %s..%s", m.UTC().Format(time.RFC3339),
			minMinute.Format(time.RFC3339), maxMinute.Format(time.RFC3339))
	}
	return nil
}

// checkEvents refuses a batch with an event no store could keep exactly,
// before anything of the batch is written, naming the first bad event.
func checkEvents(events []Event) error {
	for i := range events {
		e := &events[i]
		if err := checkEvent(e); err != nil {
			return fmt.Errorf("usage: event %d of %d (id %q): %w", i, len(events), e.ID, err)
		}
	}
	return nil
}

func checkEvent(e *Event) error {
	if e.ID == "" {
		return fmt.Errorf("the id is empty; set it with usage.EventID(session, endpoint, seq)")
	}
	if err := checkMinute(e.Minute); err != nil {
		return err
	}
	if e.BillingPeriod != "" && !inPeriod(e.Minute, e.BillingPeriod) {
		return fmt.Errorf("billing period %q is not the month of minute %s (%s); set it with usage.BillingPeriod(minute)",
			e.BillingPeriod, e.Minute.UTC().Format(time.RFC3339), BillingPeriod(e.Minute))
	}
	if e.DataPoints < 0 || e.APICalls < 0 || e.Frames < 0 || e.Bytes < 0 || e.Processing < 0 {
		return fmt.Errorf("negative counts (data points %d, API calls %d, frames %d, bytes %d, processing %s): counts only grow",
			e.DataPoints, e.APICalls, e.Frames, e.Bytes, e.Processing)
	}
	return nil
}

// billingPeriod is what a store keeps for e: its own, or its minute's month.
func (e *Event) billingPeriod() string {
	if e.BillingPeriod != "" {
		return e.BillingPeriod
	}
	return BillingPeriod(e.Minute)
}

func checkSLA(records []SLAMinute) error {
	for i := range records {
		r := &records[i]
		var err error
		switch {
		case r.ID == "":
			err = fmt.Errorf("the id is empty; set it with usage.SLAMinuteID(pod, tier, tenant, minute)")
		case checkMinute(r.Minute) != nil:
			err = checkMinute(r.Minute)
		case r.Deliveries < 0 || r.Within < 0 || r.Within > r.Deliveries:
			err = fmt.Errorf("within %d of %d deliveries: want 0 <= within <= deliveries", r.Within, r.Deliveries)
		case r.Threshold < 0 || r.P50 < 0 || r.P99 < 0 || r.Max < 0:
			err = fmt.Errorf("negative durations (threshold %s, p50 %s, p99 %s, max %s)", r.Threshold, r.P50, r.P99, r.Max)
		}
		if err != nil {
			return fmt.Errorf("usage: SLA minute %d of %d (id %q): %w", i, len(records), r.ID, err)
		}
	}
	return nil
}

func checkAvailability(records []Availability) error {
	for i := range records {
		r := &records[i]
		var err error
		switch {
		case r.ID == "":
			err = fmt.Errorf("the id is empty; set it with usage.AvailabilityID(pod, tier, minute)")
		case checkMinute(r.Minute) != nil:
			err = checkMinute(r.Minute)
		case r.Seconds < 0 || r.Seconds > 60 || r.Up < 0 || r.Up > r.Seconds:
			err = fmt.Errorf("up %d of %d seconds: want 0 <= up <= seconds <= 60", r.Up, r.Seconds)
		}
		if err != nil {
			return fmt.Errorf("usage: availability record %d of %d (id %q): %w", i, len(records), r.ID, err)
		}
	}
	return nil
}

// inPeriod reports whether t lies in the billing period p ("2006-01"),
// without formatting t: it runs for every event of every batch.
func inPeriod(t time.Time, p string) bool {
	if len(p) != 7 || p[4] != '-' {
		return false
	}
	y, m, _ := t.UTC().Date()
	n := 0
	for i, c := range []byte(p) {
		if i == 4 {
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n == y*100+int(m)
}
