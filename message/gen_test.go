package message

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestGen prints fixtureWant for the fixtures (GEN=1); review before pasting.
func TestGen(t *testing.T) {
	if os.Getenv("GEN") == "" {
		t.Skip()
	}
	files, _ := filepath.Glob("../testdata/messages/*.eml")
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		p, _ := Parse(raw)
		fmt.Printf("{\n\tfile: %q,\n\tenvelope: %s,\n\tbody: %s,\n\tbodystructure: %s,\n},\n", filepath.Base(f), lit(envelopeString(p)), lit(bodyString(p, false)), lit(bodyString(p, true)))
	}
}

func lit(s string) string {
	if strconv.CanBackquote(s) {
		return "`" + s + "`"
	}
	return strconv.Quote(s)
}
