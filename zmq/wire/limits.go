package wire

import "fmt"

// Budgets every payload decoder enforces, whatever the codec, so that a
// peer's bytes bound what decoding them costs (docs/mixing-with-python.md,
// "Numbers" and "Limits"). Nothing is allocated from a length a peer
// claims: arrays and maps are built on a scratch stack from the values
// actually decoded and allocated once at their real size.
const (
	// MaxPayloadDepth is the deepest nesting of arrays and objects a
	// payload may have. Python's json module raises RecursionError near
	// 1000 levels and its msgpack packer stops at 512, so no Python peer
	// sends more.
	MaxPayloadDepth = 1000
	// MaxPayloadValues is the most values one payload may hold, counting
	// what they cost: a scalar 1, an array 4 and an object (a map) 8, each
	// unit about 16 bytes of memory once decoded. An empty msgpack map is
	// one byte that costs some 150.
	MaxPayloadValues = 1 << 20

	// The extra cost of an array and of an object, on top of 1.
	arrayCost  = 3
	objectCost = 7
	// MaxIntegerDigits is the longest integer literal the JSON codec
	// converts exactly, Python's own limit (sys.int_max_str_digits):
	// conversion costs the square of the length.
	MaxIntegerDigits = 4300
)

// budgetError reports a payload over one of the budgets, at the offset of
// the value that broke it (-1 where the decoder does not know it).
type budgetError struct {
	msg    string
	Offset int64
}

func (e *budgetError) Error() string {
	if e.Offset < 0 {
		return e.msg
	}
	return fmt.Sprintf("%s at offset %d", e.msg, e.Offset)
}

func errTooDeep(off int64) error {
	return &budgetError{fmt.Sprintf("nested deeper than %d levels", MaxPayloadDepth), off}
}

func errTooManyValues(off int64) error {
	return &budgetError{fmt.Sprintf("more than %d values", MaxPayloadValues), off}
}
