package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ByteRate is a bandwidth in bytes per second; 0 means unlimited. It is
// written as a number of bytes with an optional unit: decimal (KB, MB, GB,
// TB: powers of 1000) or binary (KiB, MiB, GiB, TiB: powers of 1024),
// case-insensitive, optionally followed by "/s": "50MiB", "1.5MB",
// "800KiB", "2000000".
type ByteRate int64

// units by suffix, longest first so "kib" is tried before "b".
var rateUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseByteRate reads a ByteRate; "" and "0" are 0 (unlimited). Its error
// says what it wants.
func ParseByteRate(s string) (ByteRate, error) {
	bad := fmt.Errorf("%q is not a rate in bytes per second like 50MiB, 1.5MB, 800KiB or 2000000", s)
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	if t == "" {
		return 0, nil
	}
	mult := 1.0
	for _, u := range rateUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if !decimal(t) {
		return 0, bad
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, bad
	}
	bytes := math.Round(v * mult)
	switch {
	case v > 0 && bytes < 1:
		return 0, fmt.Errorf("%q is less than 1 byte per second (0 means unlimited)", s)
	case bytes > 1<<62:
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteRate(bytes), nil
}

// decimal reports whether s is digits with at most one point among them
// (no sign, exponent, hex, inf or nan, which strconv.ParseFloat takes).
func decimal(s string) bool {
	digits, points := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

// String writes r so that ParseByteRate reads it back: in the largest
// binary unit that divides it, else in bytes.
func (r ByteRate) String() string {
	for _, u := range []struct {
		name string
		n    ByteRate
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if r != 0 && r%u.n == 0 {
			return strconv.FormatInt(int64(r/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(r), 10)
}

// UnmarshalYAML reads a rate from a scalar: a number of bytes, or a
// string with a unit.
func (r *ByteRate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a rate like 50MiB")
	}
	v, err := ParseByteRate(n.Value)
	if err != nil {
		return err
	}
	*r = v
	return nil
}
