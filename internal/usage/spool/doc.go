// Package spool is the data plane's on-disk usage spool: every data point
// and API call a client is served is counted here first, then shipped in
// batches to a usage.Store, so that a store outage or a kill of the
// process loses nothing and a retry or a replay counts nothing twice.
//
// A spool is a directory of segment files that one process at a time owns
// (an exclusive flock). Each process life writes new segments under a
// random epoch id. Segments are preallocated and memory-mapped shared, so
// a record is in the page cache, and survives a SIGKILL, the moment it is
// written; a group sync (msync every SyncInterval) makes it survive a
// crash of the machine too.
//
// A Recorder meters one session: one event per interval of at most
// Interval (10 s) that never straddles a UTC minute. The event record is
// written once when its interval opens and then updated in place by every
// Add, into one of two copies chosen by the version, each with its own
// CRC, so a kill in the middle of an update loses that update only.
//
// The shipper reads the segments in order from a checkpoint and ships an
// event only once it is final: a later record of the same session (its
// next interval, a seal written when the interval ran its course, or the
// end of the session) exists, or it was written by an earlier process
// life. A final event never changes again, so every shipment of it, by a
// retry, a replay from the checkpoint or a second shipper, carries the
// same ID and Version, and the store counts it once.
package spool
