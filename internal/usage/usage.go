package usage

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// Identity is who and where a usage event is about: it is fixed for the
// life of a session (or of a user's REST calls to one endpoint in one
// process), and every event of it repeats it.
type Identity struct {
	Tenant  string `json:"tenant"`
	Company string `json:"company"`
	User    string `json:"user"`
	Tier    string `json:"tier"`
	// Session is the stream session's id, or for REST calls an id of the
	// process and user that made them.
	Session string `json:"session"`
	// Endpoint is what was used: "/v1/stream", "/v1/symbols", ...
	Endpoint string `json:"endpoint"`
}

// Event is what one identity used in one interval of at most 10 s, which
// never straddles a UTC minute. The data plane writes an event many times
// while its interval is open, each time with the totals so far and a higher
// Version; a store keeps, per ID, only the highest version, so a replay of
// the spool or a second shipper never counts anything twice.
type Event struct {
	// ID is deterministic: EventID(Session, Endpoint, Seq).
	ID string `json:"id"`
	Identity
	// Seq numbers the identity's intervals from 0.
	Seq uint32 `json:"seq"`
	// Version orders writes of one ID; the highest is the event.
	Version uint32 `json:"version"`
	// Start is when the interval began; Minute is the UTC minute it lies in.
	Start  time.Time `json:"start"`
	Minute time.Time `json:"minute"`
	// BillingPeriod is the UTC month of Minute, "2006-01".
	BillingPeriod string `json:"billing_period"`

	DataPoints int64 `json:"data_points"`
	APICalls   int64 `json:"api_calls"`
	Frames     int64 `json:"frames"`
	Bytes      int64 `json:"bytes"`
	// Processing is the time the data plane spent serving it.
	Processing time.Duration `json:"processing_ns"`
}

// EventID is the deterministic id of an identity's seq'th interval.
func EventID(session, endpoint string, seq uint32) string {
	h := sha256.New()
	h.Write([]byte(session))
	h.Write([]byte{0})
	h.Write([]byte(endpoint))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], seq)
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// BillingPeriod returns the UTC month of t, "2006-01".
func BillingPeriod(t time.Time) string { return t.UTC().Format("2006-01") }

// SLAMinute is one data-plane process's deliveries to one tenant of a tier
// in one UTC minute, measured from the feed's publish time of each tick to
// its frame entering the client's socket.
type SLAMinute struct {
	// ID is deterministic: SLAMinuteID(Pod, Tier, Tenant, Minute).
	ID     string    `json:"id"`
	Pod    string    `json:"pod"`
	Tier   string    `json:"tier"`
	Tenant string    `json:"tenant"`
	Minute time.Time `json:"minute"`
	// Threshold is the tier's SLAPolicy latency threshold at the time.
	Threshold time.Duration `json:"threshold_ns"`
	// Deliveries counts delivered ticks; Within those no later than Threshold.
	Deliveries int64         `json:"deliveries"`
	Within     int64         `json:"within"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
}

// SLAMinuteID is the deterministic id of an SLA minute record.
func SLAMinuteID(pod, tier, tenant string, minute time.Time) string {
	return hashID("sla", pod, tier, tenant, minute.UTC().Format(time.RFC3339))
}

// Availability is whether one data-plane process of a tier served its
// endpoint and was fed during one UTC minute.
type Availability struct {
	// ID is deterministic: AvailabilityID(Pod, Tier, Minute).
	ID     string    `json:"id"`
	Pod    string    `json:"pod"`
	Tier   string    `json:"tier"`
	Minute time.Time `json:"minute"`
	// Seconds is how many seconds of the minute were observed; Up how many
	// of those the process was ready (serving, and fed by the tick stream).
	Seconds int64 `json:"seconds"`
	Up      int64 `json:"up"`
}

// AvailabilityID is the deterministic id of an availability record.
func AvailabilityID(pod, tier string, minute time.Time) string {
	return hashID("availability", pod, tier, minute.UTC().Format(time.RFC3339))
}

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
