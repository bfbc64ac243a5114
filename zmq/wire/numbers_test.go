package wire

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
)

// Numbers as Python's json module writes them, what the JSON codec makes
// of them, and what it writes back (docs/mixing-with-python.md). Python
// reads every "back" text as the number it wrote: an int as that int, a
// float as that float.
var pythonNumbers = []struct {
	py   string // Python's json.dumps of the number
	want any    // decoded value
	back string // our encoding of it ("" = py)
}{
	{"0", int64(0), ""},
	{"-0", int64(0), "0"},
	{"255", int64(255), ""},
	{"9007199254740992", int64(1 << 53), ""},
	{"9007199254740993", int64(1<<53 + 1), ""},
	{"-9007199254740993", int64(-(1<<53 + 1)), ""},
	{"999999999999999999", int64(999999999999999999), ""},
	{"9223372036854775807", int64(math.MaxInt64), ""},
	{"-9223372036854775808", int64(math.MinInt64), ""},
	{"9223372036854775808", uint64(1 << 63), ""},
	{"18446744073709551615", uint64(math.MaxUint64), ""},
	{"-9223372036854775809", bigInt("-9223372036854775809"), ""},
	{"18446744073709551616", bigInt("18446744073709551616"), ""},
	{"1000000000000000000000", bigInt("1000000000000000000000"), ""},
	{"1" + strings.Repeat("0", 400), bigInt("1" + strings.Repeat("0", 400)), ""},
	{"-1" + strings.Repeat("0", 400), bigInt("-1" + strings.Repeat("0", 400)), ""},
	{"1e+21", 1e21, ""},
	{"1.5", 1.5, ""},
	{"3.0", 3.0, ""},
	{"-0.0", math.Copysign(0, -1), ""},
	{"0.1", 0.1, ""},
	{"9007199254740992.0", float64(1 << 53), ""},
	{"1e+16", 1e16, "10000000000000000.0"},
	{"1e-07", 1e-7, "1e-7"},
	{"1.7976931348623157e+308", math.MaxFloat64, "1.7976931348623157e+308"},
	{"NaN", math.NaN(), ""},
	{"Infinity", math.Inf(1), ""},
	{"-Infinity", math.Inf(-1), ""},
	// Not written by Python, read as its float() would.
	{"1e400", math.Inf(1), "Infinity"},
	{"-1e400", math.Inf(-1), "-Infinity"},
	{"1e-400", 0.0, "0.0"},
	{"2E3", 2000.0, "2000.0"},
}

func bigInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

// TestJSONNumbers decodes each number as an argument and as a reply and
// writes it back.
func TestJSONNumbers(t *testing.T) {
	c := jsonCodec{}
	for _, tc := range pythonNumbers {
		back := tc.back
		if back == "" {
			back = tc.py
		}
		_, body, err := c.DecodeRequest([]byte(`[{}, {"method": "m", "args": {"n": ` + tc.py + `}}]`))
		if err != nil {
			t.Errorf("%s: DecodeRequest: %v", tc.py, err)
			continue
		}
		got := body["args"].(map[string]any)["n"]
		if !sameJSON(got, tc.want) {
			t.Errorf("%s: decoded %T %v, want %T %v", tc.py, got, got, tc.want, tc.want)
		}
		result, _, err := c.DecodeReply([]byte(`[` + tc.py + `, null]`))
		if err != nil || !sameJSON(result, tc.want) {
			t.Errorf("%s: DecodeReply = %T %v, %v; want %T %v", tc.py, result, result, err, tc.want, tc.want)
		}
		p, err := c.EncodeReply(got, "")
		if want := `[` + back + `,null]`; err != nil || string(p) != want {
			t.Errorf("%s: EncodeReply = %s, %v; want %s", tc.py, p, err, want)
		}
		p, err = c.EncodeRequest(nil, body)
		if want := `[{},{"args":{"n":` + back + `},"method":"m"}]`; err != nil || string(p) != want {
			t.Errorf("%s: EncodeRequest = %s, %v; want %s", tc.py, p, err, want)
		}
	}
}

// The same numbers through msgpack, where they fit its 64 bits (Python's
// msgpack packs no larger integer): the types are the JSON codec's.
func TestMsgpackNumbersAgree(t *testing.T) {
	m := newMsgpackCodec()
	for _, tc := range pythonNumbers {
		if _, ok := tc.want.(*big.Int); ok {
			continue
		}
		p, err := m.EncodeReply(tc.want, "")
		if err != nil {
			t.Errorf("%s: EncodeReply: %v", tc.py, err)
			continue
		}
		got, _, err := m.DecodeReply(p)
		if err != nil || !sameJSON(got, tc.want) {
			t.Errorf("%s: msgpack round trip = %T %v, %v; want %T %v", tc.py, got, got, err, tc.want, tc.want)
		}
	}
	// Each integer encoding of msgpack: the JSON codec's types.
	for _, tc := range []struct {
		p    string
		want any
	}{
		{"\x7f", int64(127)}, {"\xe0", int64(-32)}, {"\xcc\xff", int64(255)}, {"\xcd\xff\xff", int64(65535)},
		{"\xce\xff\xff\xff\xff", int64(math.MaxUint32)}, {"\xcf\x00\x00\x00\x00\x00\x00\x00\x01", int64(1)},
		{"\xcf\x80\x00\x00\x00\x00\x00\x00\x00", uint64(1 << 63)}, {"\xd0\x80", int64(-128)},
		{"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", int64(math.MinInt64)}, {"\xca\x7f\xc0\x00\x00", math.NaN()},
		{"\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", math.Inf(-1)},
	} {
		got, _, err := m.DecodeReply([]byte("\x92" + tc.p + "\xc0"))
		if err != nil || !sameJSON(got, tc.want) {
			t.Errorf("msgpack %x = %T %v, %v; want %T %v", tc.p, got, got, err, tc.want, tc.want)
		}
	}
}

// Golden: each CALL captured from the Python driver, with its argument
// replaced by every number form as Python writes it (", " separators),
// decodes in both codecs to the same types, and our echo reply carries
// each number in a form Python reads as the same number.
func TestGoldenNumbers(t *testing.T) {
	var pyList, backList []string
	var want []any
	for _, tc := range pythonNumbers[:len(pythonNumbers)-4] { // what Python writes
		pyList = append(pyList, tc.py)
		back := tc.back
		if back == "" {
			back = tc.py
		}
		backList = append(backList, back)
		want = append(want, tc.want)
	}
	arg := "[" + strings.Join(pyList, ", ") + "]"
	calls := 0
	for _, c := range allCaptures(t) {
		payload := c.frames[len(c.frames)-1]
		i := bytes.Index(payload, []byte(`"arg": "call-`))
		if i < 0 || !bytes.HasPrefix(payload, []byte("[{")) {
			continue
		}
		end := i + bytes.IndexByte(payload[i+len(`"arg": "`):], '"') + len(`"arg": "`) + 1
		p := append(append(append([]byte{}, payload[:i]...), `"arg": `+arg...), payload[end:]...)
		calls++
		_, body, err := jsonCodec{}.DecodeRequest(p)
		if err != nil {
			t.Fatalf("%s: %v", c.where, err)
		}
		got := body["args"].(map[string]any)["arg"]
		if !sameJSON(got, want) {
			t.Fatalf("%s: decoded %#v\nwant %#v", c.where, got, want)
		}
		reply, err := jsonCodec{}.EncodeReply(got, "")
		if wantReply := "[[" + strings.Join(backList, ",") + "],null]"; err != nil || string(reply) != wantReply {
			t.Fatalf("%s: reply %s, %v\nwant %s", c.where, reply, err, wantReply)
		}

		// msgpack: the request re-encoded without the integers beyond 64
		// bits decodes to the JSON codec's types.
		var small []any
		for _, v := range got.([]any) {
			if _, ok := v.(*big.Int); !ok {
				small = append(small, v)
			}
		}
		m := newMsgpackCodec()
		args := map[string]any{"arg": small}
		mp, err := m.EncodeRequest(map[string]any{"user": "interop"}, map[string]any{"method": "echo", "args": args})
		if err != nil {
			t.Fatal(err)
		}
		_, mbody, err := m.DecodeRequest(mp)
		if err != nil || !sameJSON(mbody["args"], args) {
			t.Fatalf("%s: msgpack decoded %#v, %v\nwant %#v", c.where, mbody["args"], err, args)
		}
	}
	if calls < 5 {
		t.Fatalf("%d captured calls with an argument, want at least 5", calls)
	}
}

func ExampleCodec_numbers() {
	c, _ := NewCodec("json")
	_, body, _ := c.DecodeRequest([]byte(`[{}, {"method": "m", "args": {"id": 9007199254740993, "f": 3.0, "big": 18446744073709551616, "x": NaN}}]`))
	args := body["args"].(map[string]any)
	for _, k := range []string{"id", "f", "big", "x"} {
		fmt.Printf("%s: %T %v\n", k, args[k], args[k])
	}
	p, _ := c.EncodeReply(args, "")
	fmt.Println(string(p))
	// Output:
	// id: int64 9007199254740993
	// f: float64 3
	// big: *big.Int 18446744073709551616
	// x: float64 NaN
	// [{"big":18446744073709551616,"f":3.0,"id":9007199254740993,"x":NaN},null]
}
