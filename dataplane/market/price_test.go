package market

import (
	"math"
	"regexp"
	"strconv"
	"testing"
)

// priceGrammar is ParsePrice's documented grammar, written independently of
// its hand-rolled scanner.
var priceGrammar = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

func TestParsePrice(t *testing.T) {
	valid := []string{
		"1.39337", "0.86485", "132.141", "0", "0.0", "-1.39070", "+1.5", "1", "00001.10000",
		"1.3907e0", "1E-3", "0.1234567890123456789", "1.", ".5", "999999999999999e-9", "4.9e-324",
		"390.60", "25450.5", "1000000", "1e6", "-1e6", "1000000.000000000000000000001e-21",
	}
	for _, s := range valid {
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("ParseFloat(%q): %v", s, err)
		}
		got, ok := ParsePrice(s)
		if !ok || got != want {
			t.Errorf("ParsePrice(%q) = %v, %v; want %v", s, got, ok, want)
		}
		if gotBytes, ok := ParsePrice([]byte(s)); !ok || gotBytes != want {
			t.Errorf("ParsePrice([]byte(%q)) = %v, %v; want %v", s, gotBytes, ok, want)
		}
	}
}

// TestParsePriceRefusesHexUnderscoresAndAbsurdMagnitudes: strconv.ParseFloat
// reads all of these as finite numbers, and none is a price.
func TestParsePriceRefusesHexUnderscoresAndAbsurdMagnitudes(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"hex float", "0x1p0"},
		{"hex mantissa", "0x1.8p1"},
		{"hex with sign", "-0X1P-2"},
		{"underscore thousands", "1_000"},
		{"underscore in fraction", "1.000_5"},
		{"float64 max", "1e308"},
		{"float64 max, plain", "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"},
		{"above the bound", "1000000.0000001"},
		{"above the bound, fast path", "1000001"},
		{"above the bound, exponent", "1.0000001e6"},
		{"above the bound, negative", "-1e7"},
		{"a quintillion", "1000000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := strconv.ParseFloat(tt.in, 64); err != nil || math.IsInf(v, 0) {
				t.Fatalf("ParseFloat(%q) = %v, %v: the case should be one strconv takes as a finite number", tt.in, v, err)
			}
			if got, ok := ParsePrice(tt.in); ok {
				t.Errorf("ParsePrice(%q) = %v, want refused", tt.in, got)
			}
			if got, ok := ParsePrice([]byte(tt.in)); ok {
				t.Errorf("ParsePrice([]byte(%q)) = %v, want refused", tt.in, got)
			}
		})
	}
}

func TestParsePriceRefusesNonNumbers(t *testing.T) {
	for _, s := range []string{"", "-", "+", ".", "abc", "NaN", "nan", "Inf", "-Inf", "+Inf", "infinity",
		"1.2.3", "1,5", " 1", "1 ", "1e", "1e+", "e5", "1e999", "-1e999", "--1", "+-1", "1e5.5", "1.e", "0b101", "0o17"} {
		if got, ok := ParsePrice(s); ok {
			t.Errorf("ParsePrice(%q) = %v, want refused", s, got)
		}
	}
}

// FuzzParsePrice holds ParsePrice to its documented contract: it accepts
// exactly the strings of the decimal grammar that strconv.ParseFloat reads
// as a number no larger in magnitude than MaxPrice, and returns the same
// float strconv does.
func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"1.39337", "-0.5", "1e3", "123456789.123456789", "0x1p0", "1_000", "1e308",
		"1000000", "1000000.0000000001", ".5", "1.", "NaN", "4.9e-324"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParsePrice(s)
		if gotBytes, okBytes := ParsePrice([]byte(s)); okBytes != ok || math.Float64bits(gotBytes) != math.Float64bits(got) {
			t.Fatalf("ParsePrice(%q) = %v, %v but from bytes %v, %v", s, got, ok, gotBytes, okBytes)
		}
		want, err := strconv.ParseFloat(s, 64)
		wantOK := err == nil && priceGrammar.MatchString(s) && math.Abs(want) <= MaxPrice
		if ok != wantOK {
			t.Fatalf("ParsePrice(%q) accepted=%v, want %v (ParseFloat = %v, %v; in the grammar: %v)",
				s, ok, wantOK, want, err, priceGrammar.MatchString(s))
		}
		if !ok {
			return
		}
		if math.IsNaN(got) || math.IsInf(got, 0) || math.Abs(got) > MaxPrice {
			t.Fatalf("ParsePrice(%q) = %v: not a finite price within ±%g", s, got, float64(MaxPrice))
		}
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("ParsePrice(%q) = %v, ParseFloat = %v", s, got, want)
		}
	})
}

func BenchmarkParsePrice(b *testing.B) {
	b.Run("bytes", func(b *testing.B) {
		b.ReportAllocs()
		in := []byte("1.39337")
		for b.Loop() {
			if _, ok := ParsePrice(in); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("string", func(b *testing.B) {
		b.ReportAllocs()
		in := "1.39337"
		for b.Loop() {
			if _, ok := ParsePrice(in); !ok {
				b.Fatal("refused")
			}
		}
	})
}
