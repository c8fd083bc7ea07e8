package server_test

import (
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// LIST (SUBSCRIBED RECURSIVEMATCH) with the hierarchy of RFC 5258 §5
// example 9. A mailbox that matches a pattern but is not subscribed is
// returned, with CHILDINFO, only when a subscribed descendant of it is not
// returned itself (§3.3 rule 2B; §3.5 says to suppress redundant
// CHILDINFO); a subscribed one carries CHILDINFO whenever it has a
// subscribed descendant. A peer's scripted suite checks the
// multiple-pattern case.
func TestListRecursiveMatch(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	for _, n := range []string{"foo2", "foo2/bar1", "foo2/bar2", "baz2", "baz2/bar2", "baz2/bar22",
		"baz2/bar222", "eps2", "eps2/mamba", "qux2/bar2"} {
		c.ExpectTagged("c", "CREATE "+n, "c OK")
	}
	c.ExpectTagged("d", "DELETE qux2", "d OK")
	for _, n := range []string{"foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
		"eps2", "eps2/mamba", "qux2/bar2"} {
		c.ExpectTagged("s", "SUBSCRIBE "+n, "s OK")
	}
	c.Expect("a1", `LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar22`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar222`,
		`* LIST (\HasChildren \Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasChildren) "/" foo2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasNoChildren \Subscribed) "/" foo2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" qux2/bar2`,
		"a1 OK LIST completed")
	// Two patterns: baz2 matches and is not subscribed, and every
	// subscribed child of it is returned: baz2 is not.
	c.Expect("a2", `LIST (SUBSCRIBED RECURSIVEMATCH) "" (baz2 baz2/*)`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar22`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar222`,
		"a2 OK LIST completed")
	// Some subscribed children are not returned: baz2 is, with CHILDINFO.
	c.Expect("a3", `LIST (SUBSCRIBED RECURSIVEMATCH) "" (baz2 baz2/bar2)`,
		`* LIST (\HasChildren) "/" baz2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar2`,
		"a3 OK LIST completed")
	// A parent deleted while it had children stays as \Noselect.
	c.Expect("a4", `LIST (SUBSCRIBED RECURSIVEMATCH) "" %2`,
		`* LIST (\HasChildren) "/" baz2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasChildren \Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasChildren) "/" foo2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\Noselect \HasChildren) "/" qux2 ("CHILDINFO" ("SUBSCRIBED"))`,
		"a4 OK LIST completed")
	c.Expect("a5", `LIST (SUBSCRIBED RECURSIVEMATCH) "" (qux2 qux2/bar2)`,
		`* LIST (\HasNoChildren \Subscribed) "/" qux2/bar2`,
		"a5 OK LIST completed")
	// A parent that does not exist: \NonExistent (§3.5 table).
	c.ExpectTagged("s", "SUBSCRIBE zap2/x", "s OK")
	c.Expect("a7", `LIST (SUBSCRIBED RECURSIVEMATCH) "" zap2`,
		`* LIST (\NonExistent) "/" zap2 ("CHILDINFO" ("SUBSCRIBED"))`,
		"a7 OK LIST completed")
	// Without RECURSIVEMATCH no parent and no CHILDINFO (§3.5).
	c.Expect("a6", `LIST (SUBSCRIBED) "" %2`,
		`* LIST (\HasChildren \Subscribed) "/" eps2`,
		"a6 OK LIST completed")
}
