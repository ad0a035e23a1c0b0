// Package spool is the data plane's on-disk usage spool: every data point
// and API call a client is served is counted here first, then shipped in
// batches to a usage.Store, so that a store outage or a kill of the
// process loses nothing and a retry or a replay counts nothing twice.
//
// A spool is a directory of segment files that one process at a time owns
// (an exclusive flock on its lock file). Each process life writes new
// segments under a random epoch id; it never appends to an older one.
// Segments are preallocated (fallocate, so that a full volume is an error
// when a segment is made, not a SIGBUS when a page is first written) and
// memory-mapped shared, so a record is in the page cache, and survives a
// SIGKILL, the moment it is written; a group sync (msync every
// SyncInterval, and on Close) makes it survive a crash of the machine too.
//
// A Recorder meters one session: one event per interval of at most
// Interval (10 s) that never straddles a UTC minute. The event record is
// appended once when its interval opens and then updated in place by every
// Add, into one of two copies chosen by the version, each with its own
// CRC: a kill in the middle of an update (a window of nanoseconds) loses
// that update only. An interval that no Add rolls is sealed by a small
// record once it has run its course, so that an idle session's usage
// ships within about Interval.
//
// The shipper reads the segments in order from a checkpoint and ships an
// event only once it is final: a later record of the same session (its
// next interval, a seal or the end of the session) exists, or an earlier
// process life wrote it. A final event never changes again, so every
// shipment of it, by a retry, a replay from the checkpoint or a second
// shipper, carries the same ID and Version, and the store counts it once.
// The checkpoint only passes records that are final and shipped; segments
// wholly before it are removed.
//
// What is not guaranteed: an update cut short by a kill is lost (the
// caller had not yet been told it was counted); records a crash of the
// machine catches before their sync, or a damaged disk, are lost and
// counted in databridge_spool_records_malformed_total, while every valid
// record around them ships. A Session must not be reused for a second
// recorder of the same endpoint, in this process life or a later one
// (Epoch gives a per-life id to build one from): the event ids would
// collide and the store would keep only one of the two events.
//
// The spool is bounded: Full turns true while ReserveBytes are still left,
// and the data plane pauses deliveries until shipping frees room, so that
// it never delivers what it cannot count.
package spool
