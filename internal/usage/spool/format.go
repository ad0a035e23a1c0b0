package spool

import (
	"encoding/binary"
	"hash/crc32"
	"sync/atomic"
	"unsafe"
)

// The segment format. A segment file is a 64-byte header followed by
// records, each starting on an 8-byte boundary so that the event counters
// are aligned words. Integers are little-endian (the byte order of every
// platform the data plane runs on; the length word is stored atomically in
// host order, see publish).
//
// Header: magic [8], format version u32, CRC-32C of bytes [12,64) u32,
// epoch [16] (random per process life), segment sequence u64, creation time
// unix ns i64, 16 bytes zero.
//
// Record: length u32 (bytes after the 8-byte prefix, before padding),
// CRC-32C u32 (of the kind byte and the payload, for event records of the
// fixed part only: the two counter copies carry their own CRCs), kind u8,
// three bytes zero, then the payload.
const (
	magic         = "DBSPOOL\x00"
	formatVersion = 1
	headerSize    = 64
	prefixSize    = 8
	recordAlign   = 8
)

// Record kinds.
const (
	kindIdentity     byte = 1 // key u32, JSON usage.Identity
	kindEvent        byte = 2 // key u32, seq u32, start, minute, copies A and B
	kindSeal         byte = 3 // key u32, seq u32: the interval seq is final
	kindEnd          byte = 4 // key u32: the identity has no more events
	kindSLA          byte = 5 // JSON usage.SLAMinute
	kindAvailability byte = 6 // JSON usage.Availability
)

var kindNames = [...]string{
	kindIdentity:     "identity",
	kindEvent:        "event",
	kindSeal:         "seal",
	kindEnd:          "end",
	kindSLA:          "sla",
	kindAvailability: "availability",
}

// Event record layout (offsets from the record start).
const (
	evKey      = 12
	evSeq      = 16
	evStart    = 24
	evMinute   = 32
	evFixedEnd = 40 // the record CRC covers [8, evFixedEnd)
	evCopyA    = 40
	copySize   = 48
	evSize     = evCopyA + 2*copySize // 136
	// A copy: CRC-32C of [4,48) u32, version u32, then five i64:
	// data points, API calls, frames, bytes, processing ns.
	cpVersion = 4
	cpCounts  = 8
	nCounts   = 5
)

const (
	sealSize  = 24 // key at 12, seq at 16
	endSize   = 16 // key at 12
	identJSON = 16 // an identity record's JSON follows its key
	jsonAt    = 12 // an SLA or availability record's JSON
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func alignUp(n int) int { return (n + recordAlign - 1) &^ (recordAlign - 1) }

// header is a decoded segment header.
type header struct {
	version uint32
	epoch   [16]byte
	seq     uint64
	created int64
}

func putHeader(b []byte, h header) {
	copy(b[0:8], magic)
	binary.LittleEndian.PutUint32(b[8:12], h.version)
	copy(b[16:32], h.epoch[:])
	binary.LittleEndian.PutUint64(b[32:40], h.seq)
	binary.LittleEndian.PutUint64(b[40:48], uint64(h.created))
	binary.LittleEndian.PutUint32(b[12:16], crc32.Checksum(b[16:headerSize], castagnoli))
}

// headerStatus says why a header was refused.
type headerStatus int

const (
	headerOK headerStatus = iota
	headerDamaged
	headerNewer
)

func parseHeader(b []byte) (header, headerStatus) {
	if len(b) < headerSize || string(b[0:8]) != magic {
		return header{}, headerDamaged
	}
	h := header{version: binary.LittleEndian.Uint32(b[8:12])}
	if binary.LittleEndian.Uint32(b[12:16]) != crc32.Checksum(b[16:headerSize], castagnoli) {
		return h, headerDamaged
	}
	if h.version != formatVersion {
		return h, headerNewer
	}
	copy(h.epoch[:], b[16:32])
	h.seq = binary.LittleEndian.Uint64(b[32:40])
	h.created = int64(binary.LittleEndian.Uint64(b[40:48]))
	return h, headerOK
}

// crcEnd is where a record's CRC stops: the fixed part of an event record,
// everything else whole.
func crcEnd(kind byte, length int) int {
	if kind == kindEvent {
		return evFixedEnd
	}
	return prefixSize + length
}

// sealRecord computes the record's CRC over b (the whole record, prefix
// included) and then stores its length, last, so that a record cut short
// by a kill is never seen: its length word is still zero. The atomic store
// keeps the compiler from moving the earlier stores after it.
func sealRecord(b []byte, kind byte, length int) {
	b[8] = kind
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(b[prefixSize:crcEnd(kind, length)], castagnoli))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), uint32(length))
}

// plausible says whether length can be a record of kind with room bytes
// left in its segment.
func plausible(kind byte, length, room int) bool {
	if prefixSize+length > room {
		return false
	}
	switch kind {
	case kindEvent:
		return length == evSize-prefixSize
	case kindSeal:
		return length == sealSize-prefixSize
	case kindEnd:
		return length == endSize-prefixSize
	case kindIdentity:
		return length > identJSON-prefixSize
	case kindSLA, kindAvailability:
		return length > jsonAt-prefixSize
	}
	return false
}

// parseStatus is what parseRecord found at an offset.
type parseStatus int

const (
	recOK     parseStatus = iota
	recEnd                // a zero length: nothing was written here
	recBad                // not a valid record
	recNoCopy             // an event record whose two copies are both damaged
)

// parseRecord reads the record at off of data; on recOK (and recNoCopy)
// it returns the kind, the record bytes and the offset of the next record.
func parseRecord(data []byte, off int) (kind byte, rec []byte, next int, st parseStatus) {
	if off+prefixSize+1 > len(data) {
		return 0, nil, off, recEnd
	}
	length := int(binary.LittleEndian.Uint32(data[off : off+4]))
	if length == 0 {
		return 0, nil, off, recEnd
	}
	kind = data[off+8]
	if !plausible(kind, length, len(data)-off) {
		return kind, nil, off, recBad
	}
	rec = data[off : off+prefixSize+length]
	if binary.LittleEndian.Uint32(rec[4:8]) != crc32.Checksum(rec[prefixSize:crcEnd(kind, length)], castagnoli) {
		return kind, nil, off, recBad
	}
	next = off + alignUp(prefixSize+length)
	if next > len(data) {
		next = len(data)
	}
	if kind == kindEvent {
		if _, ok := readCopy(rec); !ok {
			return kind, rec, next, recNoCopy
		}
	}
	return kind, rec, next, recOK
}

// counts are an event's counters, in copy order.
type counts struct {
	version uint32
	c       [nCounts]int64
}

// writeCopy writes c into the copy its version selects, with its CRC. A
// kill in the middle leaves the other copy, one version older, intact.
func writeCopy(rec []byte, c *counts) {
	o := evCopyA + int(c.version%2)*copySize
	cp := rec[o : o+copySize : o+copySize]
	binary.LittleEndian.PutUint32(cp[cpVersion:], c.version)
	for i, v := range c.c {
		binary.LittleEndian.PutUint64(cp[cpCounts+8*i:], uint64(v))
	}
	binary.LittleEndian.PutUint32(cp[0:4], crc32.Checksum(cp[4:], castagnoli))
}

// readCopy returns the valid copy with the higher version.
func readCopy(rec []byte) (counts, bool) {
	var best counts
	found := false
	for i := range 2 {
		o := evCopyA + i*copySize
		cp := rec[o : o+copySize]
		if binary.LittleEndian.Uint32(cp[0:4]) != crc32.Checksum(cp[4:], castagnoli) {
			continue
		}
		v := binary.LittleEndian.Uint32(cp[cpVersion:])
		if found && v <= best.version {
			continue
		}
		best.version = v
		for j := range best.c {
			best.c[j] = int64(binary.LittleEndian.Uint64(cp[cpCounts+8*j:]))
		}
		found = true
	}
	return best, found
}

func recKey(rec []byte) uint32 { return binary.LittleEndian.Uint32(rec[evKey:]) }
func recSeq(rec []byte) uint32 { return binary.LittleEndian.Uint32(rec[evSeq:]) }
func recI64(rec []byte, o int) int64 {
	return int64(binary.LittleEndian.Uint64(rec[o:]))
}
