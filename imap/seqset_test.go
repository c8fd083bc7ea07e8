package imap

import (
	"reflect"
	"testing"
)

func TestSeqSetString(t *testing.T) {
	tests := []struct {
		set  SeqSet
		want string
	}{
		{nil, ""},
		{SeqSet{{1, 1}}, "1"},
		{SeqSet{{1, 3}, {5, 5}, {7, 0}}, "1:3,5,7:*"},
		{SeqSet{{0, 0}}, "*"},
		{SeqSet{{0, 4}}, "*:4"},
		{SeqSet{{4, 2}}, "4:2"},
		{SeqSet{{4294967295, 4294967295}}, "4294967295"},
	}
	for _, tt := range tests {
		if got := tt.set.String(); got != tt.want {
			t.Errorf("%v.String() = %q, want %q", []NumRange(tt.set), got, tt.want)
		}
		if got := string(tt.set.AppendTo([]byte("x"))); got != "x"+tt.want {
			t.Errorf("AppendTo = %q", got)
		}
	}
}

func TestSeqSetDynamic(t *testing.T) {
	for _, tt := range []struct {
		set  SeqSet
		want bool
	}{
		{nil, false},
		{SeqSet{{1, 5}}, false},
		{SeqSet{{1, 5}, {7, 0}}, true},
		{SeqSet{{0, 3}}, true},
		{SeqSet{{0, 0}}, true},
	} {
		if got := tt.set.Dynamic(); got != tt.want {
			t.Errorf("%v.Dynamic() = %v", tt.set, got)
		}
	}
}

func TestSeqSetContains(t *testing.T) {
	set := SeqSet{{1, 3}, {10, 8}, {20, 0}}
	for _, tt := range []struct {
		n, max uint32
		want   bool
	}{
		{1, 30, true}, {3, 30, true}, {4, 30, false}, {8, 30, true}, {9, 30, true},
		{10, 30, true}, {11, 30, false}, {20, 30, true}, {30, 30, true}, {31, 30, false},
		{19, 30, false},
		// "20:*" with max 15 is 15:20.
		{15, 15, true}, {14, 15, false}, {17, 15, true},
		{0, 30, false},
	} {
		if got := set.Contains(tt.n, tt.max); got != tt.want {
			t.Errorf("Contains(%d, %d) = %v, want %v", tt.n, tt.max, got, tt.want)
		}
	}
	if (SeqSet{{0, 0}}).Contains(5, 5) != true || (SeqSet{{0, 0}}).Contains(4, 5) {
		t.Error("* must be max only")
	}
	if (SeqSet(nil)).Contains(1, 1) {
		t.Error("empty set contains nothing")
	}
}

func TestSeqSetResolve(t *testing.T) {
	const maxU = 4294967295
	tests := []struct {
		set  SeqSet
		max  uint32
		want []NumRange
	}{
		{nil, 10, nil},
		{SeqSet{{1, 1}}, 10, []NumRange{{1, 1}}},
		{SeqSet{{5, 0}}, 10, []NumRange{{5, 10}}},
		{SeqSet{{0, 0}}, 10, []NumRange{{10, 10}}},
		{SeqSet{{0, 0}}, 0, []NumRange{{0, 0}}},
		{SeqSet{{4, 2}}, 10, []NumRange{{2, 4}}},
		{SeqSet{{12, 0}}, 10, []NumRange{{10, 12}}},
		{SeqSet{{20, 25}}, 10, []NumRange{{20, 25}}}, // kept; callers clamp
		{SeqSet{{7, 9}, {1, 3}, {2, 5}}, 10, []NumRange{{1, 5}, {7, 9}}},
		{SeqSet{{1, 3}, {4, 6}, {8, 8}}, 10, []NumRange{{1, 6}, {8, 8}}}, // adjacent merge
		{SeqSet{{5, 5}, {5, 5}, {5, 5}}, 10, []NumRange{{5, 5}}},         // duplicates
		{SeqSet{{1, 10}, {2, 3}, {4, 5}}, 10, []NumRange{{1, 10}}},       // contained
		{SeqSet{{3, 0}, {1, 2}}, 10, []NumRange{{1, 10}}},                // star + adjacent
		{SeqSet{{maxU, maxU}, {1, maxU}}, 5, []NumRange{{1, maxU}}},      // no overflow
		{SeqSet{{maxU - 1, maxU - 1}, {maxU, 0}}, maxU, []NumRange{{maxU - 1, maxU}}},
		{SeqSet{{9, 9}, {7, 7}, {8, 8}}, 10, []NumRange{{7, 9}}},
	}
	for _, tt := range tests {
		orig := append(SeqSet(nil), tt.set...)
		got := tt.set.Resolve(tt.max)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%v.Resolve(%d) = %v, want %v", tt.set, tt.max, got, tt.want)
		}
		if !reflect.DeepEqual(orig, tt.set) {
			t.Errorf("Resolve modified its receiver: %v", tt.set)
		}
	}
}

func TestUIDSetFromSorted(t *testing.T) {
	tests := []struct {
		in   []uint32
		want string
	}{
		{nil, ""},
		{[]uint32{5}, "5"},
		{[]uint32{1, 2, 3, 7, 9, 10, 11, 12}, "1:3,7,9:12"},
		{[]uint32{1, 3, 5}, "1,3,5"},
		{[]uint32{4294967294, 4294967295}, "4294967294:4294967295"},
	}
	for _, tt := range tests {
		if got := UIDSetFromSorted(tt.in).String(); got != tt.want {
			t.Errorf("UIDSetFromSorted(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
