package tierconfig

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
)

// KeyPrefix starts every API key, so that a key pasted into the wrong place
// (a chat, a repository) is recognisable to people and secret scanners.
const KeyPrefix = "dbk_"

// keyBytes is the entropy of a key: 256 bits, as crypto/rand gives them.
const keyBytes = 32

// keyDigits is how many base62 digits 256 bits need: ceil(256 / log2(62)).
// Keys are padded to it so every key has the same length.
const keyDigits = 43

// Key is a freshly issued API key. It exists so that a key cannot be logged
// by accident: every way fmt, log/slog, encoding/json or a YAML encoder can
// print a Key yields a redacted form that names only the start of its hash
// (which also appears in tenants.json, so logs stay correlatable). The
// plain key is only available from Reveal, an explicit, greppable call made
// where the key must leave the process: the tenant's credentials Secret,
// and standalone mode's first-run banner.
//
// Keys arriving from clients stay plain strings (Registry.Authenticate):
// they are hashed at once and never stored or printed.
type Key string

// Reveal returns the key itself. Call it only to hand the key to its owner.
func (k Key) Reveal() string { return string(k) }

// Hash returns HashKey of the key: what tenants.json stores.
func (k Key) Hash() string { return HashKey(string(k)) }

// String returns a redacted form such as "dbk_[redacted sha256:1a2b3c4d]".
func (k Key) String() string {
	return fmt.Sprintf("%s[redacted sha256:%s]", KeyPrefix, k.Hash()[:8])
}

// GoString redacts the key for %#v.
func (k Key) GoString() string { return k.String() }

// Format redacts the key for every fmt verb, including %s, %q and %x, which
// would otherwise print a string type's bytes.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// MarshalText redacts the key in JSON, YAML and slog output.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// HashKey returns the lower-case hex SHA-256 of key. A fast, unsalted hash
// is enough because keys carry 256 random bits: there is no dictionary to
// attack, and Authenticate must hash on every connection.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyGenerator issues API keys. It is safe for concurrent use.
type KeyGenerator struct {
	mu sync.Mutex // a caller's io.Reader need not be safe for concurrent use
	r  io.Reader
}

// NewKeyGenerator returns a generator that reads its randomness from r; nil
// means crypto/rand, which is what production must use. Tests pass a fixed
// reader to get fixed keys.
func NewKeyGenerator(r io.Reader) *KeyGenerator {
	if r == nil {
		r = rand.Reader
	}
	return &KeyGenerator{r: r}
}

// NewKey returns a new key: KeyPrefix and 43 base62 characters encoding 32
// random bytes. Base62 rather than base64url so that a double-click selects
// the whole key and no character needs escaping anywhere.
func (g *KeyGenerator) NewKey() (Key, error) {
	var b [keyBytes]byte
	g.mu.Lock()
	_, err := io.ReadFull(g.r, b[:])
	g.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("read %d random bytes for an API key: %w", keyBytes, err)
	}
	digits := new(big.Int).SetBytes(b[:]).Text(62)
	return Key(KeyPrefix + strings.Repeat("0", keyDigits-len(digits)) + digits), nil
}
