package tierconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"sigs.k8s.io/yaml"
)

var keyPattern = regexp.MustCompile(`^dbk_[0-9A-Za-z]{43}$`)

func TestNewKeyFormatAndUniqueness(t *testing.T) {
	g := NewKeyGenerator(nil)
	seen := map[Key]bool{}
	for range 200 {
		k, err := g.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(k.Reveal()) {
			t.Fatalf("key %d chars does not match %s", len(k.Reveal()), keyPattern)
		}
		if seen[k] {
			t.Fatal("NewKey repeated a key")
		}
		seen[k] = true
	}
}

func TestNewKeyIsFixedWidthAtTheExtremes(t *testing.T) {
	for _, fill := range []byte{0x00, 0x01, 0xff} {
		k, err := NewKeyGenerator(bytes.NewReader(bytes.Repeat([]byte{fill}, 32))).NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(k.Reveal()) {
			t.Errorf("32 bytes of %#x: key %q does not match %s", fill, k.Reveal(), keyPattern)
		}
	}
	zero, _ := NewKeyGenerator(bytes.NewReader(make([]byte, 32))).NewKey()
	if zero.Reveal() != "dbk_"+strings.Repeat("0", 43) {
		t.Errorf("all-zero key = %q", zero.Reveal())
	}
}

func TestNewKeyFailsOnShortRandomness(t *testing.T) {
	_, err := NewKeyGenerator(bytes.NewReader(make([]byte, 31))).NewKey()
	if err == nil || !strings.Contains(err.Error(), "32 random bytes") {
		t.Errorf("NewKey with 31 bytes of randomness: %v, want an error", err)
	}
	_, err = NewKeyGenerator(iotest.ErrReader(fmt.Errorf("entropy pool closed"))).NewKey()
	if err == nil || !strings.Contains(err.Error(), "entropy pool closed") {
		t.Errorf("NewKey with a failing reader: %v, want its error", err)
	}
}

func TestHashKey(t *testing.T) {
	// FIPS 180-2 test vector.
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashKey(abc) = %s", got)
	}
	k := Key("dbk_x")
	if k.Hash() != HashKey("dbk_x") {
		t.Errorf("Key.Hash differs from HashKey")
	}
	if got := hashKeyBytes(strings.Repeat("k", 100)); fmt.Sprintf("%x", got) != HashKey(strings.Repeat("k", 100)) {
		t.Errorf("hashKeyBytes of a long key differs from HashKey")
	}
}

// TestKeyIsRedactedEverywhere prints a key every way a careless log line
// might and checks the secret part never appears.
func TestKeyIsRedactedEverywhere(t *testing.T) {
	k, err := NewKeyGenerator(nil).NewKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(k.Reveal(), KeyPrefix)
	want := "dbk_[redacted sha256:" + k.Hash()[:8] + "]"

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s"} {
		outputs[verb] = fmt.Sprintf(verb, k)
	}
	outputs["struct %+v"] = fmt.Sprintf("%+v", struct{ K Key }{k})
	outputs["struct %#v"] = fmt.Sprintf("%#v", struct{ K Key }{k})
	outputs["String"] = k.String()
	outputs["Sprint"] = fmt.Sprint(k)
	j, _ := json.Marshal(map[string]Key{"key": k})
	outputs["json"] = string(j)
	y, _ := yaml.Marshal(struct{ K Key }{k})
	outputs["yaml"] = string(y)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("issued", "key", k)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("issued", "key", k)
	outputs["slog"] = buf.String()

	for how, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s printed the key: %s", how, out)
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s = %q, want it to contain %q", how, out, want)
		}
	}
}
