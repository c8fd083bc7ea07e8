package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// SetupReport is what the setup phase found and did.
type SetupReport struct {
	Users int `json:"users"`
	// Appended is the number of messages appended to fill INBOXes;
	// Expunged the number of messages flagged \Deleted that an earlier,
	// interrupted run left behind and setup expunged.
	Appended int     `json:"messages_appended"`
	Expunged int     `json:"messages_expunged"`
	Seconds  float64 `json:"seconds"`
	// MinMessages and MaxMessages are the sizes of the INBOXes after
	// setup.
	MinMessages int `json:"min_messages"`
	MaxMessages int `json:"max_messages"`
	// Greeting is the server's first greeting; Capabilities those it
	// announced after login.
	Greeting     string   `json:"greeting"`
	Capabilities []string `json:"capabilities"`

	// counts are the INBOX sizes after setup by account. The run phase
	// reads and changes only these messages (and its own appends),
	// which no client expunges, so their sequence numbers hold.
	counts []int
	// preCaps are the capabilities before login.
	preCaps []string
}

// Setup checks every account's INBOX and fills it up to cfg.Fill
// messages. An INBOX holding messages without the Marker header is
// refused unless cfg.Force is set. Setup is idempotent: a second run
// appends nothing.
func Setup(ctx context.Context, cfg Config) (*SetupReport, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	start := time.Now()
	rep := &SetupReport{Users: cfg.Users, counts: make([]int, cfg.Users)}

	// The first account alone: it learns the greeting and capabilities.
	res, err := setupUser(ctx, &cfg, 0, true)
	if err != nil {
		return nil, err
	}
	rep.Greeting, rep.Capabilities, rep.preCaps = res.greeting, res.caps, res.preCaps
	rep.counts[0] = res.count
	rep.Appended += res.appended
	rep.Expunged += res.expunged

	workers := min(cfg.Clients, cfg.Users-1, 8)
	jobs := make(chan int)
	results := make(chan struct {
		i   int
		res setupResult
		err error
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r, err := setupUser(ctx, &cfg, i, false)
				results <- struct {
					i   int
					res setupResult
					err error
				}{i, r, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := 1; i < cfg.Users; i++ {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var errs []error
	for r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		rep.counts[r.i] = r.res.count
		rep.Appended += r.res.appended
		rep.Expunged += r.res.expunged
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.MinMessages, rep.MaxMessages = rep.counts[0], rep.counts[0]
	for _, n := range rep.counts {
		rep.MinMessages = min(rep.MinMessages, n)
		rep.MaxMessages = max(rep.MaxMessages, n)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

type setupResult struct {
	greeting      string
	caps, preCaps []string
	count         int
	appended      int
	expunged      int
}

// setupUser checks and fills the INBOX of account i.
func setupUser(ctx context.Context, cfg *Config, i int, first bool) (setupResult, error) {
	var res setupResult
	user := cfg.userName(i)
	fail := func(what string, err error) (setupResult, error) {
		return res, fmt.Errorf("setup of %s: %s: %w", user, what, err)
	}
	c, greeting, err := dial(ctx, cfg, cfg.addr(i, 0))
	if err != nil {
		return fail("connecting", err)
	}
	defer c.close()
	res.greeting = greeting
	res.preCaps = c.caps
	if first && res.preCaps == nil {
		if err := c.simple("CAPABILITY"); err != nil {
			return fail("CAPABILITY", err)
		}
		res.preCaps = c.caps
	}
	c.caps = nil
	if err := c.login(cfg.Auth, user, cfg.Password, hasCap(res.preCaps, "SASL-IR")); err != nil {
		return fail("login", err)
	}
	if first {
		// The capabilities after login (RFC 3501 §7.2.1: they may
		// differ), asked for explicitly whatever the OK said.
		if err := c.simple("CAPABILITY"); err != nil {
			return fail("CAPABILITY", err)
		}
		res.caps = c.caps
		if !hasCap(res.caps, "IMAP4rev1") && !hasCap(res.caps, "IMAP4rev2") {
			return fail("CAPABILITY", fmt.Errorf("no IMAP4rev1 in %q", res.caps))
		}
	}
	caps := res.caps
	if caps == nil {
		caps = c.caps
	}
	selectInbox := func() (int, error) {
		c.exists = -1
		if err := c.simple("SELECT INBOX"); err != nil {
			return 0, err
		}
		if c.exists < 0 {
			return 0, errors.New("no EXISTS in the response")
		}
		return c.exists, nil
	}
	n, err := selectInbox()
	if err != nil {
		return fail("SELECT INBOX", err)
	}
	if n > 0 && !cfg.Force {
		// RFC 3501 §6.4.4: HEADER with an empty string matches every
		// message that has the field.
		if err := c.simple(`UID SEARCH NOT HEADER ` + Marker + ` ""`); err != nil {
			return fail("UID SEARCH", err)
		}
		if c.searchN > 0 {
			return res, fmt.Errorf("setup of %s: its INBOX holds %d messages the load generator did not append; "+
				"it would change their flags (force to use it anyway)", user, c.searchN)
		}
		if err := c.simple(`UID SEARCH DELETED`); err != nil {
			return fail("UID SEARCH", err)
		}
		if c.searchN > 0 {
			// Left by a run that ended between STORE and EXPUNGE.
			res.expunged = c.searchN
			if err := c.simple("EXPUNGE"); err != nil {
				return fail("EXPUNGE", err)
			}
		}
	}
	if n < cfg.Fill {
		nonSync := hasCap(caps, "LITERAL+")
		multi := hasCap(caps, "MULTIAPPEND")
		gen := newMessageGen(cfg.Seed, uint64(i)<<32|uint64(n))
		base := time.Date(2024, 1, 2, 8, 0, 0, 0, time.UTC)
		for done := n; done < cfg.Fill; {
			c.begin()
			c.cmd = append(c.cmd, "APPEND INBOX "...)
			size, batch := 0, 0
			for done < cfg.Fill && (batch == 0 || multi && batch < 100 && size < 2<<20) {
				date := base.Add(time.Duration(done) * 97 * time.Minute)
				msg := gen.message(done+1, "fill", date)
				if batch > 0 {
					c.cmd = append(c.cmd, ' ')
				}
				// Most old mail is read, the newest tenth is not,
				// and some is flagged.
				switch {
				case done >= cfg.Fill-cfg.Fill/10:
					c.cmd = append(c.cmd, "() \""...)
				case done%25 == 0:
					c.cmd = append(c.cmd, "(\\Seen \\Flagged) \""...)
				default:
					c.cmd = append(c.cmd, "(\\Seen) \""...)
				}
				c.cmd = date.AppendFormat(c.cmd, "02-Jan-2006 15:04:05 -0700")
				c.cmd = append(c.cmd, "\" "...)
				if err := c.appendLiteral(nonSync, len(msg), msg); err != nil {
					return fail("APPEND", err)
				}
				size += len(msg)
				batch++
				done++
			}
			if err := c.expectOK(); err != nil {
				return fail("APPEND of "+strconv.Itoa(batch)+" messages", err)
			}
			res.appended += batch
		}
		if n, err = selectInbox(); err != nil {
			return fail("SELECT INBOX", err)
		}
		if n < cfg.Fill {
			return res, fmt.Errorf("setup of %s: INBOX has %d messages after appending %d, want at least %d", user, n, res.appended, cfg.Fill)
		}
	}
	res.count = n
	// A failing LOGOUT does not matter: the connection is closed anyway.
	_ = c.simple("LOGOUT")
	return res, nil
}
