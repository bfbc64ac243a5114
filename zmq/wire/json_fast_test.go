package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The JSON codec must read and write what Python's json module does: these
// tests and fuzz targets compare it on tricky inputs with a reference built
// on encoding/json (refDecode, refMarshal): UseNumber, with numbers then
// converted as Python converts them. Run the fuzz targets with e.g.
//
//	go test -run=NONE -fuzz=FuzzFastJSONDecode -fuzztime=60s ./zmq/wire/

// sameJSON is reflect.DeepEqual for decoded JSON, but telling -0 from 0,
// taking NaN as equal to NaN and comparing *big.Int by value.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && (a == b && math.Signbit(a) == math.Signbit(b) || math.IsNaN(a) && math.IsNaN(b))
	case *big.Int:
		b, ok := b.(*big.Int)
		return ok && a.Cmp(b) == 0
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) || (a == nil) != (b == nil) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) || (a == nil) != (b == nil) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Python's non-finite literals become number literals no payload has
// before encoding/json sees them, and those become the floats again.
const (
	refNaN    = "1e999999991"
	refInf    = "1e999999992"
	refNegInf = "-1e999999992"
)

// errRefSkip: the input holds a marker literal, so the reference cannot
// tell it from a non-finite literal.
var errRefSkip = errors.New("input holds a reference marker")

// refSubstitute replaces NaN, Infinity and -Infinity outside strings by
// the markers, with spaces around them so that they join nothing.
func refSubstitute(p []byte) ([]byte, error) {
	if bytes.Contains(p, []byte("e99999999")) {
		return nil, errRefSkip
	}
	var out []byte
	inString := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(p) {
					i++
					out = append(out, p[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		rest := p[i:]
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(rest, []byte("-Infinity")):
			out = append(out, " "+refNegInf+" "...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(rest, []byte("Infinity")):
			out = append(out, " "+refInf+" "...)
			i += len("Infinity") - 1
		case bytes.HasPrefix(rest, []byte("NaN")):
			out = append(out, " "+refNaN+" "...)
			i += len("NaN") - 1
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// refDecode is the reference for parseJSON: what Python's json.loads
// gives, in the Go types of the codec, within the budgets.
func refDecode(p []byte) (any, error) {
	q, err := refSubstitute(p)
	if err != nil {
		return nil, err
	}
	if !json.Valid(q) {
		var v any
		return nil, json.Unmarshal(q, &v)
	}
	dec := json.NewDecoder(bytes.NewReader(q))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if refDepth(v) > MaxPayloadDepth {
		return nil, errors.New("too deep")
	}
	if refCost(v) > MaxPayloadValues {
		return nil, errors.New("too many values")
	}
	return refNumbers(v)
}

func refDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			d = max(d, refDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range v {
			d = max(d, refDepth(e))
		}
		return d + 1
	}
	return 0
}

// refCost counts the values of v as the budget does.
func refCost(v any) int {
	switch v := v.(type) {
	case []any:
		n := 1 + arrayCost
		for _, e := range v {
			n += refCost(e)
		}
		return n
	case map[string]any:
		n := 1 + objectCost
		for _, e := range v {
			n += refCost(e)
		}
		return n
	}
	return 1
}

// refNumbers converts the json.Numbers of v as Python does.
func refNumbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		switch s {
		case refNaN:
			return math.NaN(), nil
		case refInf:
			return math.Inf(1), nil
		case refNegInf:
			return math.Inf(-1), nil
		}
		if strings.ContainsAny(s, ".eE") {
			f, _ := strconv.ParseFloat(s, 64) // ±Inf or ±0 out of range, as Python's float()
			return f, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n, nil
		}
		if len(strings.TrimPrefix(s, "-")) > MaxIntegerDigits {
			return nil, errors.New("integer too long")
		}
		n, _ := new(big.Int).SetString(s, 10)
		return n, nil
	case []any:
		for i, e := range v {
			var err error
			if v[i], err = refNumbers(e); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, e := range v {
			var err error
			if v[k], err = refNumbers(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// refUnmarshalArray is unmarshalArray on the reference decoder.
func refUnmarshalArray(p []byte, what string) ([]any, error) {
	v, err := refDecode(p)
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case []any:
		return v, nil
	case nil:
		return nil, badPayload(nil, "json: %s payload is null, want an array", what)
	case map[string]any:
		return nil, badPayload(nil, "json: %s payload is an object, want an array", what)
	case string:
		return nil, badPayload(nil, "json: %s payload is a string, want an array", what)
	case bool:
		return nil, badPayload(nil, "json: %s payload is a bool, want an array", what)
	}
	return nil, badPayload(nil, "json: %s payload is a number, want an array", what)
}

// stdUnmarshalArray is the encoding/json implementation unmarshalArray
// replaced, kept for the benchmarks.
func stdUnmarshalArray(p []byte, what string) ([]any, error) {
	var v []any
	if err := json.Unmarshal(p, &v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return nil, badPayload(nil, "json: %s payload is %s, want an array", what, article(typeErr.Value))
		}
		return nil, badPayload(err, "json: %s payload", what)
	}
	if v == nil {
		return nil, badPayload(nil, "json: %s payload is null, want an array", what)
	}
	return v, nil
}

// nest returns n levels of open around inner, closed by close.
func nest(open, inner, close string, n int) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

var jsonDecodeCases = []string{
	// Whitespace and top-level kinds.
	``, ` `, `[]`, ` [ ] `, "\t\n\r [\t\n\r1\t\n\r,\t\n\r2\t\n\r]\t\n\r", "\f[]", "\v[]", "[]\f", "\u00a0[]",
	"\ufeff[]", "\xef\xbb\xbf[1]", `{}`, `null`, `true`, `false`, `"s"`, `0`, `-1`, `[null]`, `[true,false]`,
	`nul`, `nulL`, `tru`, `trUe`, `f`, `falsey`, `[nullx]`, `[truefalse]`, `n`, `t`, `[t]`,
	// Structure errors.
	`[`, `]`, `{`, `}`, `[,]`, `[1,]`, `[,1]`, `[1 2]`, `[1,,2]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`,
	`{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`, `{a:1}`, `{'a':1}`, `{"a":1}}`, `[]]`, `[[]`, `[{]}`, `[}`, `{]`,
	`[1] x`, `[1]x`, `[1] [2]`, `[1],`, "[1]\x00", `[] // c`, `/* c */ []`, `[1];`,
	// Duplicate keys: the last wins.
	`{"a":1,"a":2}`, `{"a":{"x":1},"a":[2]}`, `{"":1,"":null}`, `{"a":1,"b":2,"a":3,"c":4,"b":5}`,
	`[{"k":1,"k":{"k":2,"k":3}}]`,
	// Numbers.
	`0`, `-0`, `[-0]`, `[-0.0]`, `[0.0]`, `[-0e0]`, `[0e+1]`, `[1]`, `[-1]`, `[12]`, `[0.5]`, `[1.25e3]`,
	`[1E3]`, `[1e+3]`, `[1e-3]`, `[1E-3]`, `[00]`, `[01]`, `[-01]`, `[+1]`, `[.5]`, `[1.]`, `[1.e3]`,
	`[1e]`, `[1e+]`, `[1e-]`, `[1E]`, `[1ee3]`, `[1e3.5]`, `[1.5.5]`, `[-]`, `[--1]`, `[-.5]`, `[-a]`,
	`[0x10]`, `[1_000]`, `[Infinity]`, `[NaN]`, `[-Infinity]`, `[1e21]`, `[1e-7]`, `[1e-6]`,
	`[123456789012345678901]`, `[1.5e300]`, `[-1.5e300]`, `[1e308]`, `[1.7976931348623157e308]`,
	`[1.7976931348623159e308]`, `[1e309]`, `[-1e309]`, `[1e400]`, `1e400`, `[1e400, x]`, `{"a":1e400}`,
	`[{"a":1e400},{}]`, `[1e-400]`, `[-1e-400]`, `[5e-324]`, `[2e-324]`, `[4.9406564584124654e-324]`,
	`[9007199254740993]`, `[9007199254740992]`, `[999999999999999]`, `[-999999999999999]`,
	`[9999999999999999]`, `[-9999999999999999]`, `[18446744073709551615]`, `[18446744073709551616]`,
	`[99999999999999999999999999999999999999]`, `[0.1]`, `[0.30000000000000004]`, `[1e00000000000000000001]`,
	`[` + strings.Repeat("9", 400) + `]`, `[0.` + strings.Repeat("0", 400) + `1]`, `[1` + strings.Repeat("0", 310) + `]`,
	`1`, `1 `, ` 1`, `-`, `1.`, `1e`, `01`, `0 1`,
	// Strings and escapes.
	`[""]`, `["a"]`, `["\""]`, `["\\"]`, `["\/"]`, `["\b\f\n\r\t"]`, `["\u0000"]`, `["\u001f"]`, `["\u0041"]`,
	`["\u00e9"]`, `["\u00E9"]`, `["\u20ac"]`, `["\u2028\u2029"]`, `["\uffff"]`, `["\ufffd"]`, `["\ufeff"]`,
	`["\ud83d\ude00"]`, `["\uD83D\uDE00"]`, `["\ud800\udc00"]`, `["\udbff\udfff"]`, `["\ud800"]`, `["\udc00"]`,
	`["\ud800x"]`, `["\ud800\u0041"]`, `["\ud800\ud800"]`, `["\ud800\ud800\udc00"]`, `["\udc00\ud800"]`,
	`["\ude00\ud83d"]`, `["\ud800\\"]`, `["\ud800\n"]`, `["\ud800\u"]`, `["\ud800\u12"]`, `["\ud800\uzzzz"]`,
	`["\ud800\udc0"]`, `["\ud800\u00"]`, `["a\ud83d\ude00b\ud83dc"]`,
	`["\'"]`, `["\a"]`, `["\x41"]`, `["\0"]`, `["\U0041"]`, `["\u"]`, `["\u1"]`, `["\u12"]`, `["\u123"]`,
	`["\u123g"]`, `["\uGGGG"]`, `["\`, `["\u`, `["\u00`, `["\ud83d\`, `["\ud83d\u`, `["\ud83d\ude0`, `["abc`, `"`,
	"[\"\x00\"]", "[\"\x1f\"]", "[\"\t\"]", "[\"\n\"]", "[\"\x7f\"]", "[\"a\x01b\"]", "[\"\\u0041\x02\"]",
	// UTF-8, valid and not.
	`["é"]`, `["€"]`, `["😀"]`, "[\"\u2028\"]", "[\"\xff\"]", "[\"a\xffb\"]", "[\"\xc3\"]", "[\"\xc3\x28\"]",
	"[\"\xe2\x82\"]", "[\"\xe2\x82\\n\"]", "[\"\xf0\x9f\x98\"]", "[\"\xf0\x9f\x98\x80\xff\"]",
	"[\"\xed\xa0\x80\"]", "[\"\xed\xbf\xbf\"]", "[\"\xc0\xaf\"]", "[\"\xf8\x88\x80\x80\x80\"]",
	"[\"\xf4\x90\x80\x80\"]", "[\"\x80\"]", "[\"\xbf\"]", "[\"é\xff\\u00e9\"]", "[\"\xff\\\"\"]",
	"\xff", "[\xff]", "{\"\xff\":1}", "{\"a\xc3\":\"\xc3b\"}", "[\"\xe2\x80\xa8\"]",
	// Object keys go through the same path as strings.
	`{"\u0041":1}`, `{"\ud800":1,"\ufffd":2}`, `{"a\"b":1}`, `{"":""}`, `{"a":"b","c":{"d":[1,{"e":null}]}}`,
	// Nesting, up to and beyond encoding/json's limit.
	nest("[", "", "]", 10000), nest("[", "", "]", 10001), nest("[", "1", "]", 10000),
	nest("[", "", "]", 9999) + "x", strings.Repeat("[", 10001), strings.Repeat("[", 100000),
	nest(`{"a":`, "1", "}", 10000), nest(`{"a":`, "1", "}", 10001), nest(`[{"a":`, "1", "}]", 5000),
	nest(`[{"a":`, "1", "}]", 5001), nest("[", "", "]", 100),
	// Truncations of a realistic payload.
	`[{"user": "u", "roles": ["a", "b"]}, {"method": "echo", "args": {"n": -1.5e-3, "ok": true, "x": null}}]`,
}

func init() {
	// Every prefix of the realistic payload is a truncated input.
	full := jsonDecodeCases[len(jsonDecodeCases)-1]
	for i := range full {
		jsonDecodeCases = append(jsonDecodeCases, full[:i])
	}
}

// checkDecode compares parseJSON and unmarshalArray with the reference.
func checkDecode(t *testing.T, p []byte) {
	t.Helper()
	want, werr := refDecode(p)
	if werr == errRefSkip {
		return
	}
	got, err := parseJSON(p)
	if (err != nil) != (werr != nil) {
		t.Fatalf("parseJSON(%.200q) error = %v, reference error = %v", p, err, werr)
	}
	if err == nil && !sameJSON(got, want) {
		t.Fatalf("parseJSON(%.200q) = %#v, reference gives %#v", p, got, want)
	}
	if err != nil {
		var se *jsonSyntaxError
		var be *budgetError
		switch {
		case errors.As(err, &se) && se.Offset >= 0 && se.Offset <= int64(len(p)):
		case errors.As(err, &be) && be.Offset >= 0 && be.Offset <= int64(len(p)):
		default:
			t.Fatalf("parseJSON(%.200q) error %q: want a *jsonSyntaxError or *budgetError with an offset in the input", p, err)
		}
	}

	for _, what := range []string{"request", "reply"} {
		wantA, werr := refUnmarshalArray(p, what)
		gotA, err := unmarshalArray(p, what)
		if (err != nil) != (werr != nil) {
			t.Fatalf("unmarshalArray(%.200q) error = %v, reference error = %v", p, err, werr)
		}
		if err == nil {
			if !sameJSON(gotA, wantA) {
				t.Fatalf("unmarshalArray(%.200q) = %#v, reference gives %#v", p, gotA, wantA)
			}
			continue
		}
		checkPayloadError(t, "unmarshalArray", err)
		// A top level of the wrong kind is reported in the same words.
		if top := bytes.TrimLeft(p, " \t\n\r"); len(top) > 0 && top[0] != '[' && strings.HasSuffix(werr.Error(), "want an array") {
			if err.Error() != werr.Error() {
				t.Fatalf("unmarshalArray(%.200q) error %q, reference %q", p, err, werr)
			}
		}
	}
}

func TestFastJSONDecode(t *testing.T) {
	for _, c := range jsonDecodeCases {
		checkDecode(t, []byte(c))
	}
	for _, c := range allCaptures(t) {
		checkDecode(t, c.frames[len(c.frames)-1])
	}
	for _, r := range payloadRejections {
		checkDecode(t, []byte(r.payload))
	}
}

// Every byte value in every position of a small payload.
func TestFastJSONDecodeBytes(t *testing.T) {
	base := []byte(`[{"a":"x\u00e9y","b":[1.5e-3,-0,true,null]},"\ud83d\ude00"]`)
	p := make([]byte, len(base))
	for i := range base {
		for c := range 256 {
			copy(p, base)
			p[i] = byte(c)
			checkDecode(t, p)
		}
	}
}

// Strings are scanned 8 bytes at a time: every byte value, and some
// sequences, at every position of strings longer than that, as keys and
// values, encoded and decoded, and after an escape.
func TestFastJSONStringBytes(t *testing.T) {
	const base = "0123456789abcdefghijklmn"
	inserts := []string{"\u2028", "\u2029", "é", "€", "😀", "\xe2\x80", "\xed\xa0\x80", "\xf0\x9f\x98", `\u00e9`, `\"`}
	for c := range 256 {
		inserts = append(inserts, string([]byte{byte(c)}))
	}
	for _, ins := range inserts {
		for i := range len(base) + 1 {
			s := base[:i] + ins + base[i:]
			checkEncode(t, s)
			checkEncode(t, map[string]any{s: s})
			checkDecode(t, []byte(`["`+s+`"]`))
			checkDecode(t, []byte(`[{"`+s+`":0}]`))
			checkDecode(t, []byte(`["`+s)) // unterminated
			// After an escape, unescape scans the rest 8 bytes at a time.
			checkDecode(t, []byte(`["\"`+s+`"]`))
			checkDecode(t, []byte(`["\"`+s))
		}
	}
}

func TestFastJSONDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[{}, {}] x`, "wire: json: request payload: invalid character 'x' after top-level value at offset 9"},
		{`[{}, {"method": "m"`, "wire: json: request payload: unexpected end of JSON input at offset 19"},
		{``, "wire: json: request payload: unexpected end of JSON input at offset 0"},
		{`[1, 01]`, "wire: json: request payload: invalid character '1' after array element at offset 5"},
		{`[1.]`, "wire: json: request payload: invalid character ']' after decimal point in numeric literal at offset 3"},
		{`["a` + "\x01" + `"]`, `wire: json: request payload: invalid character '\x01' in string literal at offset 3`},
		{`["\q"]`, "wire: json: request payload: invalid character 'q' in string escape code at offset 3"},
		{`["\u12x4"]`, `wire: json: request payload: invalid character 'x' in \u hexadecimal character escape at offset 6`},
		{`[trve]`, "wire: json: request payload: invalid character 'v' in literal true (expecting 'u') at offset 3"},
		{`{"a" 1}`, "wire: json: request payload: invalid character '1' after object key at offset 5"},
		{`{"a":1,}`, "wire: json: request payload: invalid character '}' looking for beginning of object key string at offset 7"},
		{nest("[", "", "]", 1001), "wire: json: request payload: nested deeper than 1000 levels at offset 1000"},
		{`[{}, {"n": 1` + strings.Repeat("0", 4300) + `}]`, "wire: json: request payload: integer of 4301 digits exceeds the limit of 4300 at offset 11"},
		{`[{}, {"n": NaN, "m": -Inf}]`, "wire: json: request payload: invalid character '}' in literal -Infinity (expecting 'i') at offset 25"},
		// The wrong kind at the top level, in the words of the encoding/json path.
		{`{"method": "echo"}`, "wire: json: request payload is an object, want an array"},
		{` null `, "wire: json: request payload is null, want an array"},
		{`1e400`, "wire: json: request payload is a number, want an array"},
		{`"x"`, "wire: json: request payload is a string, want an array"},
		{`false`, "wire: json: request payload is a bool, want an array"},
	} {
		_, err := unmarshalArray([]byte(tc.in), "request")
		if err == nil || err.Error() != tc.want {
			t.Errorf("unmarshalArray(%.40q) error = %v, want %s", tc.in, err, tc.want)
		}
	}
}

// A named type json.Marshal must handle itself.
type jsonTestString string

type jsonTestStruct struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
	C any
}

type jsonTestMarshaler struct{ s string }

func (m jsonTestMarshaler) MarshalJSON() ([]byte, error) {
	if m.s == "fail" {
		return nil, errors.New("marshaler failed")
	}
	return []byte(m.s), nil
}

func jsonEncodeCases() []any {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	cyclic := map[string]any{"a": 1}
	cyclic["self"] = cyclic
	cyclicSlice := []any{1, nil}
	cyclicSlice[1] = cyclicSlice
	deep := any("x")
	for range 1500 {
		deep = []any{map[string]any{"k": deep}}
	}
	ip := 7
	var nilMap map[string]any
	strs := []string{
		"", "a", `"`, `\`, "/", "<>&", "<script>", "a\x00b", "\b\f\n\r\t", "\x1f\x7f", string(all),
		"é", "€", "😀", "\u2028", "\u2029", "a\u2028b\u2029c", "\u202a", "\u2027", "\ufffd", "\ufeff",
		"\xff", "a\xffb", "\xc3", "\xc3\x28", "\xe2\x82", "\xe2\x82\xac\xe2", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xf0\x9f\x98", "\xc0\xaf", "\x80\x80", strings.Repeat("x<y&z\xff", 300),
	}
	floats := []float64{
		0, math.Copysign(0, -1), 1, -1, 0.1, 0.5, 1.5, 1e20, 1e21, 999999999999999999999, 1e21 - 65536,
		1e-6, 1e-7, 9.999999e-7, 1.0000001e-6, 1e-9, 1e-10, 1.5e-300, 1.5e300, -1.5e300, 123456789012345678901,
		5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 1<<53 + 2, 1e100,
		12345678.9, 100, 1e15, 1e16, 2.5e-8, -2.5e-8, 1.0 / 3, 2.0 / 3, math.Pi, -math.E,
	}
	vals := []any{
		nil, true, false, emptyObject{}, ip, &ip, (*int)(nil), nilMap, []any(nil), []string(nil),
		map[string]string(nil), []map[string]any(nil), []map[string]any{nil, {}, {"b": 1, "a": 2}},
		map[string]any{}, []any{}, []string{}, map[string]string{},
		int(math.MinInt), int(math.MaxInt), int8(math.MinInt8), int8(math.MaxInt8), int16(math.MinInt16),
		int16(math.MaxInt16), int32(math.MinInt32), int32(math.MaxInt32), int64(math.MinInt64), int64(math.MaxInt64),
		uint(math.MaxUint), uint8(255), uint16(math.MaxUint16), uint32(math.MaxUint32), uint64(math.MaxUint64),
		uintptr(12345), 0, -0, int64(1) << 53,
		math.NaN(), math.Inf(1), math.Inf(-1), float32(math.NaN()), float32(math.Inf(-1)),
		map[string]any{"ok": 1, "bad": math.NaN()},
		float32(0), float32(math.Copysign(0, -1)), float32(0.1), float32(1e21), float32(1e20), float32(1e-6),
		float32(1e-7), float32(9.99999e-7), float32(math.MaxFloat32), float32(math.SmallestNonzeroFloat32),
		float32(16777217), float32(3.4e38), float32(1.0 / 3),
		json.Number(""), json.Number("0"), json.Number("-0"), json.Number("1.5e300"), json.Number("1e400"),
		json.Number("01"), json.Number("1."), json.Number("+1"), json.Number("abc"), json.Number("1e"),
		json.Number("-"), json.Number(" 1"), json.Number("12345678901234567890123"),
		[]byte(nil), []byte{}, []byte("hello\xff"), json.RawMessage(`{"b": 1,  "a" : "<"}`),
		json.RawMessage(`{bad`), jsonTestString("<named>"), map[string]jsonTestString{"k": "v"},
		jsonTestStruct{A: 1, C: map[string]any{"z": 1, "y": "<"}}, &jsonTestStruct{B: "b"},
		jsonTestMarshaler{`"ok"`}, jsonTestMarshaler{`bad`}, jsonTestMarshaler{"fail"},
		map[string]any{"m": jsonTestMarshaler{"fail"}}, []any{jsonTestMarshaler{` [1, 2] `}},
		time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), time.Duration(5), map[int]string{2: "b", 10: "a", -1: "c"},
		map[string]int{"b": 1, "a": 2}, []int{1, 2}, [2]any{"a", nil}, [0]int{}, struct{}{},
		func() {}, make(chan int), map[string]any{"f": func() {}}, []any{1, make(chan int)}, complex(1, 2),
		map[bool]int{true: 1}, cyclic, cyclicSlice, deep,
		map[string]any{
			"b": "x", "a": "y", "A": "z", "é": 1, "aa": 2, "a\x00": 3, "": 4, "\xff": 5, "\xfe": 6, "<": 7,
			"\u2028": 8, "~": 9, "a\xffb": 10, "ab": 11,
		},
		map[string]string{"b": "<", "a": "\xff", "\u2028": "\u2029", "": ""},
		[]any{"a", 1.5, []any{nil, true}, map[string]any{"x": []string{"y", "<"}}},
	}
	for _, s := range strs {
		vals = append(vals, s, []string{s}, map[string]any{s: s}, map[string]string{s: s}, jsonTestString(s),
			json.Number(s))
	}
	for _, f := range floats {
		vals = append(vals, f, -f, float32(f), -float32(f), []any{f, float32(f)})
	}
	return vals
}

// marshalJSON is marshalPair for a single value.
func marshalJSON(v any) ([]byte, error) { return EncodeJSON(v) }

// refFloat is how Python's json module writes f back as the same float:
// as json.Marshal does, with ".0" if that looks like an integer, and
// Python's literals for the non-finite values.
func refFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	var b []byte
	if bits == 32 {
		b, _ = json.Marshal(float32(f))
	} else {
		b, _ = json.Marshal(f)
	}
	if !bytes.ContainsAny(b, ".e") {
		b = append(b, ".0"...)
	}
	return string(b)
}

// refMarshal is the reference for marshalJSON: json.Marshal, with floats
// written by refFloat (through placeholder strings, as json.Marshal
// writes no NaN) and values nested beyond MaxPayloadDepth refused.
func refMarshal(v any) ([]byte, error) {
	var floats []string
	var walk func(v any, depth int) (any, error)
	walk = func(v any, depth int) (any, error) {
		placeholder := func(text string) any {
			floats = append(floats, text)
			return fmt.Sprintf("\x00float%d\x00", len(floats)-1)
		}
		switch v := v.(type) {
		case float64:
			return placeholder(refFloat(v, 64)), nil
		case float32:
			return placeholder(refFloat(float64(v), 32)), nil
		case []any:
			if v == nil {
				return v, nil
			}
			if depth >= MaxPayloadDepth {
				return nil, errEncodeTooDeep
			}
			out := make([]any, len(v))
			for i, e := range v {
				var err error
				if out[i], err = walk(e, depth+1); err != nil {
					return nil, err
				}
			}
			return out, nil
		case map[string]any:
			if v == nil {
				return v, nil
			}
			if depth >= MaxPayloadDepth {
				return nil, errEncodeTooDeep
			}
			out := make(map[string]any, len(v))
			for k, e := range v {
				var err error
				if out[k], err = walk(e, depth+1); err != nil {
					return nil, err
				}
			}
			return out, nil
		case []map[string]any:
			if v == nil {
				return v, nil
			}
			a := make([]any, len(v))
			for i, m := range v {
				a[i] = m
			}
			return walk(a, depth)
		}
		return v, nil
	}
	w, err := walk(v, 0)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	for i, text := range floats {
		b = bytes.Replace(b, []byte(fmt.Sprintf(`"\u0000float%d\u0000"`, i)), []byte(text), 1)
	}
	return b, nil
}

// checkEncode compares marshalJSON and marshalPair with the reference.
func checkEncode(t *testing.T, v any) {
	t.Helper()
	if s, ok := v.(string); ok && strings.Contains(s, "\x00float") {
		return // a placeholder of the reference
	}
	want, werr := refMarshal(v)
	got, err := marshalJSON(v)
	if (err != nil) != (werr != nil) || !bytes.Equal(got, want) || err != nil && err.Error() != werr.Error() {
		t.Fatalf("marshalJSON(%#.200v) = %.200q, %v\nreference gives %.200q, %v", v, got, err, want, werr)
	}
	for _, pair := range [][2]any{{v, nil}, {emptyObject{}, v}} {
		want, werr := refMarshal([]any{pair[0], pair[1]})
		got, err := marshalPair(pair[0], pair[1])
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("marshalPair(%#.200v) = %.200q, %v\nreference gives %.200q, %v", pair, got, err, want, werr)
		}
	}
}

func TestFastJSONEncode(t *testing.T) {
	for _, v := range jsonEncodeCases() {
		checkEncode(t, v)
	}
	for _, c := range jsonDecodeCases {
		var v any
		if json.Unmarshal([]byte(c), &v) == nil {
			checkEncode(t, v)
		}
	}
	reqCtx, body := sampleRequest()
	checkEncode(t, reqCtx)
	checkEncode(t, body)
}

// The returned bytes are the caller's: later encodes must not touch them.
func TestFastJSONEncodeNotReused(t *testing.T) {
	a, err := marshalPair("first", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := marshalPair(strings.Repeat("x", 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	if string(a) != `["first",null]` {
		t.Fatalf("first result overwritten: %q", a)
	}
}

func FuzzFastJSONDecode(f *testing.F) {
	for _, c := range allCaptures(f) {
		f.Add(c.frames[len(c.frames)-1])
	}
	for _, r := range payloadRejections {
		f.Add([]byte(r.payload))
	}
	for _, c := range jsonDecodeCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	seedBombs(f)
	cs := []Codec{jsonCodec{}}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkAllocBound(t, cs, p)
		checkDecode(t, p)
	})
}

// FuzzFastJSONEncode builds values from its arguments: data as JSON (with
// float64s or json.Numbers) when it is JSON, and as raw strings, keys,
// json.Numbers and []byte either way; s likewise; f and n as every
// number type.
func FuzzFastJSONEncode(f *testing.F) {
	for _, c := range allCaptures(f) {
		f.Add(c.frames[len(c.frames)-1], "", 0.0, int64(0))
	}
	for _, c := range jsonDecodeCases {
		if len(c) < 1000 {
			f.Add([]byte(c), "<&>\u2028", 1e21, int64(-1))
		}
	}
	f.Add([]byte(`["\ud800", 1e-7]`), "\xff", 1e-7, int64(math.MinInt64))
	f.Add([]byte("x\xffy"), "1.5e300", 9.999999e-7, int64(math.MaxInt64))
	f.Add([]byte(`{"b":1,"a":2}`), "-0", math.Copysign(0, -1), int64(1)<<53)
	f.Fuzz(func(t *testing.T, data []byte, s string, fl float64, n int64) {
		raw := string(data)
		vals := []any{
			raw, s, data, json.Number(raw), json.Number(s), fl, float32(fl), n, uint64(n), int32(n), uint8(n),
			[]string{raw, s}, map[string]string{raw: s, s: raw},
			map[string]any{raw: fl, s: n, "k": []any{raw, s, float32(fl)}},
		}
		var v any
		if json.Unmarshal(data, &v) == nil {
			vals = append(vals, v, map[string]any{s: v})
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var vn any
		if dec.Decode(&vn) == nil {
			vals = append(vals, vn)
		}
		for _, v := range vals {
			checkEncode(t, v)
		}
	})
}

// A realistic oslo request: a context of 10 strings, a message echoing
// 1 KiB of text.
func benchJSONRequest() (reqCtx, body map[string]any) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog; ", 23)[:1024]
	reqCtx = map[string]any{
		"user":              "interop",
		"tenant":            "demo",
		"project_id":        "3f0b7b8d2c8e4a7f9b1d6e5c4a3b2f1e",
		"user_id":           "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
		"domain":            "default",
		"request_id":        "req-243212a7-341c-4837-99b5-6f047f08fb29",
		"global_request_id": "req-0c8f6a3e-1d2b-4c5a-9e8f-7a6b5c4d3e2f",
		"auth_token":        "gAAAAABmXy3kQ8vZ1fR2tN4pL7wS9cE0bH6jK5mD",
		"roles":             "admin,member",
		"timestamp":         "2024-05-01T12:34:56.789012",
	}
	body = map[string]any{
		"method":    "echo",
		"args":      map[string]any{"message": text},
		"version":   "1.0",
		"namespace": nil,
	}
	return reqCtx, body
}

// stdJSONCodec is jsonCodec as it was, on encoding/json alone.
type stdJSONCodec struct{}

func (stdJSONCodec) EncodeRequest(reqCtx, body map[string]any) ([]byte, error) {
	return json.Marshal([2]any{objectOrEmpty(reqCtx), objectOrEmpty(body)})
}

func (stdJSONCodec) DecodeRequest(p []byte) (map[string]any, map[string]any, error) {
	v, err := stdUnmarshalArray(p, "request")
	if err != nil {
		return nil, nil, err
	}
	return requestParts("json", v)
}

func (stdJSONCodec) EncodeReply(result any, failure string) ([]byte, error) {
	return json.Marshal([2]any{result, failureOrNull(failure)})
}

func (stdJSONCodec) DecodeReply(p []byte) (any, string, error) {
	v, err := stdUnmarshalArray(p, "reply")
	if err != nil {
		return nil, "", err
	}
	return replyParts("json", v)
}

type jsonBenchCodec interface {
	EncodeRequest(reqCtx, body map[string]any) ([]byte, error)
	DecodeRequest(p []byte) (map[string]any, map[string]any, error)
	EncodeReply(result any, failure string) ([]byte, error)
	DecodeReply(p []byte) (any, string, error)
}

var jsonBenchCodecs = []struct {
	name  string
	codec jsonBenchCodec
}{{"std", stdJSONCodec{}}, {"fast", jsonCodec{}}}

func TestStdJSONCodecAgrees(t *testing.T) {
	reqCtx, body := benchJSONRequest()
	p1, err1 := stdJSONCodec{}.EncodeRequest(reqCtx, body)
	p2, err2 := jsonCodec{}.EncodeRequest(reqCtx, body)
	if err1 != nil || err2 != nil || !bytes.Equal(p1, p2) {
		t.Fatalf("EncodeRequest: std %q, %v; fast %q, %v", p1, err1, p2, err2)
	}
	c1, b1, err1 := stdJSONCodec{}.DecodeRequest(p1)
	c2, b2, err2 := jsonCodec{}.DecodeRequest(p1)
	if err1 != nil || err2 != nil || !sameJSON(c1, c2) || !sameJSON(b1, b2) || !sameJSON(b2, body) {
		t.Fatalf("DecodeRequest: std %v %v %v; fast %v %v %v", c1, b1, err1, c2, b2, err2)
	}
}

func BenchmarkJSONEncodeRequest(b *testing.B) {
	reqCtx, body := benchJSONRequest()
	for _, c := range jsonBenchCodecs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.codec.EncodeRequest(reqCtx, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONDecodeRequest(b *testing.B) {
	p, err := jsonCodec{}.EncodeRequest(benchJSONRequest())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range jsonBenchCodecs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, _, err := c.codec.DecodeRequest(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONEncodeReply(b *testing.B) {
	_, body := benchJSONRequest()
	result := body["args"].(map[string]any)["message"]
	for _, c := range jsonBenchCodecs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.codec.EncodeReply(result, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONDecodeReply(b *testing.B) {
	_, body := benchJSONRequest()
	p, err := jsonCodec{}.EncodeReply(body["args"].(map[string]any)["message"], "")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range jsonBenchCodecs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, _, err := c.codec.DecodeReply(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
