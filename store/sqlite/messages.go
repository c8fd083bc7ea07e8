package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/internal/storeutil"
)

var _ store.Messages = (*Store)(nil)

// selectable loads a mailbox of the user that can hold messages.
func selectable(ctx context.Context, q querier, userID, id int64) (store.Mailbox, error) {
	m, err := mailboxByID(ctx, q, userID, id)
	if err != nil {
		return store.Mailbox{}, err
	}
	if m.NoSelect {
		return store.Mailbox{}, fmt.Errorf("%w: %q", store.ErrNoSelect, m.Name)
	}
	return m, nil
}

// bumpModSeq gives the mailbox its next MODSEQ and returns it.
func bumpModSeq(ctx context.Context, tx *dbtx, mailboxID int64) (uint64, error) {
	var v int64
	err := tx.QueryRowContext(ctx,
		`UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq`,
		mailboxID).Scan(&v)
	return uint64(v), err
}

// bumpModSeqPurge is bumpModSeq followed by purgeTombstones, with the
// tombstone count and the oldest tombstone's time read by the same
// statement, for a write that adds no tombstone.
func (s *Store) bumpModSeqPurge(ctx context.Context, tx *dbtx, mailboxID int64, now time.Time) (uint64, error) {
	var v, count int64
	var oldest sql.NullInt64
	err := tx.QueryRowContext(ctx,
		`UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1
		RETURNING highest_modseq, tombstone_count,
			(SELECT expunged_at FROM expunged WHERE mailbox_id = ?1 ORDER BY modseq LIMIT 1)`,
		mailboxID).Scan(&v, &count, &oldest)
	if err != nil {
		return 0, err
	}
	return uint64(v), s.purgeTombstonesOf(ctx, tx, mailboxID, now, count, oldest)
}

// reserveUIDs takes n consecutive UIDs and one new MODSEQ for an append or
// a copy into m and returns the mailbox after that, with the first UID.
func reserveUIDs(ctx context.Context, tx *dbtx, m store.Mailbox, n int) (store.Mailbox, uint32, error) {
	after, err := scanMailbox(tx.QueryRowContext(ctx,
		`UPDATE mailboxes SET uidnext = uidnext + ?1, highest_modseq = highest_modseq + 1
		WHERE id = ?2 AND uidnext + ?1 <= 4294967296 RETURNING `+mailboxCols, n, m.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Mailbox{}, 0, fmt.Errorf("%w: mailbox %q has no UIDs left for %d messages", store.ErrInvalid, m.Name, n)
	} else if err != nil {
		return store.Mailbox{}, 0, err
	}
	// The update succeeded, so the old uidnext was at most 2^32-1 and
	// m.UIDNext is exact (not clamped).
	return after, m.UIDNext, nil
}

// ---- UID sets ----

// uidRange is a closed range of UIDs.
type uidRange struct{ lo, hi uint32 }

// uidRuns sorts and dedupes uids into maximal runs of consecutive values.
func uidRuns(uids []uint32) []uidRange {
	if len(uids) == 0 {
		return nil
	}
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	var runs []uidRange
	for _, u := range sorted {
		if u == 0 {
			continue // UIDs start at 1
		}
		if n := len(runs); n > 0 && (u == runs[n-1].hi || u == runs[n-1].hi+1) {
			runs[n-1].hi = u
			continue
		}
		runs = append(runs, uidRange{u, u})
	}
	return runs
}

// inRuns reports whether uid is in one of the (sorted) runs.
func inRuns(runs []uidRange, uid uint32) bool {
	_, found := slices.BinarySearchFunc(runs, uid, func(r uidRange, u uint32) int {
		switch {
		case r.hi < u:
			return -1
		case r.lo > u:
			return 1
		}
		return 0
	})
	return found
}

// maxRunQueries is how many runs a UID set may have before it is read with
// one scan of its whole span (filtered in Go) instead of one range query
// per run.
const maxRunQueries = 32

// queryRuns runs query, which must select from messages (or expunged)
// with its conditions ending in `uid BETWEEN ? AND ?` (bound after args)
// and ORDER BY uid, for the UID set, and returns the rows whose UID is in
// the set, scanned by scan, in ascending UID order.
func queryRuns[T any](ctx context.Context, q querier, runs []uidRange, query string, args []any,
	scan func(rows *sql.Rows) (T, uint32, error)) ([]T, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	spans := runs
	filter := len(runs) > maxRunQueries
	if filter {
		spans = []uidRange{{runs[0].lo, runs[len(runs)-1].hi}}
	}
	var out []T
	for _, r := range spans {
		rows, err := q.QueryContext(ctx, query, append(slices.Clip(args), r.lo, r.hi)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			v, uid, err := scan(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			if !filter || inRuns(runs, uid) {
				out = append(out, v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ---- dates ----

func encodeDate(t time.Time) (sec, tz int64) {
	_, off := t.Zone()
	return t.Unix(), int64(off)
}

func decodeDate(sec, tz int64) time.Time {
	t := time.Unix(sec, 0)
	if tz == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(tz)))
}

// ---- the store.Messages methods ----

// AppendMessages implements store.Messages. A zero InternalDate means the
// store's clock (Options.Now); INTERNALDATE keeps whole seconds and the
// zone offset. Appending no messages changes nothing and returns the
// mailbox as it is.
func (s *Store) AppendMessages(ctx context.Context, userID, mailboxID int64, msgs []store.NewMessage) ([]uint32, store.Mailbox, error) {
	if len(msgs) == 0 {
		m, err := selectable(ctx, s.readers(), userID, mailboxID)
		return nil, m, err
	}
	// On a full disk the room left is for deletes (full.go).
	if err := s.reserve.room(s.freePages); err != nil {
		return nil, store.Mailbox{}, err
	}
	type prepared struct {
		flags     string
		date, tz  int64
		body      []byte
		structure []byte
		file      sql.NullString // the body's file (files.go)
		header    []byte         // the body's header, when its length is known
	}
	now := s.opts.Now()
	prep := make([]prepared, len(msgs))
	for i, m := range msgs {
		fs, err := storeutil.NormFlags(m.Flags)
		if err != nil {
			return nil, store.Mailbox{}, err
		}
		d := m.InternalDate
		if d.IsZero() {
			d = now
		}
		p := prepared{flags: storeutil.FormatFlags(fs), body: m.Body, structure: m.Structure}
		p.date, p.tz = encodeDate(d)
		if p.body == nil {
			p.body = []byte{} // NOT NULL: an empty message is an empty blob
		}
		if m.HeaderLen > 0 && m.HeaderLen <= len(p.body) {
			p.header = p.body[:m.HeaderLen]
		}
		prep[i] = p
	}
	// Large bodies are written to files, durably, before the
	// transaction that refers to them.
	var large [][]byte
	for _, p := range prep {
		if s.files.large(len(p.body)) {
			large = append(large, p.body)
		}
	}
	var names []string
	if len(large) > 0 {
		var err error
		if names, err = s.files.put(large); err != nil {
			return nil, store.Mailbox{}, s.noteFull(err)
		}
		k := 0
		for i := range prep {
			if s.files.large(len(prep[i].body)) {
				prep[i].file = sql.NullString{String: names[k], Valid: true}
				k++
			}
		}
	}

	var uids []uint32
	var mb store.Mailbox
	err := s.write(ctx, func(tx *dbtx) error {
		uids = nil
		r, err := reserveAppend(ctx, tx, userID, mailboxID, len(prep))
		if err != nil {
			return err
		}
		bodyStmt, err := tx.PrepareContext(ctx, `INSERT INTO bodies (data, file) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer bodyStmt.Close()
		structStmt, err := tx.PrepareContext(ctx, `INSERT INTO structures (body_id, data) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer structStmt.Close()
		headerStmt, err := tx.PrepareContext(ctx, `INSERT INTO headers (body_id, data) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer headerStmt.Close()
		msgStmt, err := tx.PrepareContext(ctx, `INSERT INTO messages
			(mailbox_id, uid, modseq, flags, internal_date, internal_tz, size, body_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer msgStmt.Close()
		list := make([]uint32, len(prep))
		for i, p := range prep {
			data := p.body
			if p.file.Valid {
				data = []byte{}
			}
			res, err := bodyStmt.ExecContext(ctx, data, p.file)
			if err != nil {
				return err
			}
			bodyID, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if p.structure != nil {
				if _, err := structStmt.ExecContext(ctx, bodyID, p.structure); err != nil {
					return err
				}
			}
			if p.header != nil {
				if _, err := headerStmt.ExecContext(ctx, bodyID, p.header); err != nil {
					return err
				}
			}
			uid := r.first + uint32(i)
			// Keywords in the mailbox's spelling (flags.go).
			flags, err := s.spell(ctx, tx, r.after.ID, p.flags)
			if err != nil {
				return err
			}
			if _, err := msgStmt.ExecContext(ctx, r.after.ID, uid, r.after.HighestModSeq, flags,
				p.date, p.tz, len(p.body), bodyID); err != nil {
				return err
			}
			list[i] = uid
		}
		if err := s.purgeTombstonesOf(ctx, tx, r.after.ID, now, r.tombstones, r.oldestTombstone); err != nil {
			return err
		}
		uids, mb = list, r.after
		return nil
	})
	if err != nil {
		if !errors.Is(err, errCommit) {
			// Nothing refers to them. (After a failed COMMIT the
			// transaction may be durable all the same: they stay.)
			s.files.remove(names)
		}
		return nil, store.Mailbox{}, err
	}
	return uids, mb, nil
}

// reserved is what reserveAppend returns.
type reserved struct {
	after store.Mailbox // the mailbox after the reservation
	first uint32        // the first reserved UID
	// tombstones and oldestTombstone are the mailbox's tombstone count
	// and the expunge time of its oldest tombstone, for
	// purgeTombstonesOf.
	tombstones      int64
	oldestTombstone sql.NullInt64
}

// reserveAppend is selectable and reserveUIDs in one statement, for the
// common case of an append; it also reads what the tombstone purge
// checks. A durable append is one fsync plus a handful of statements, and
// each statement through database/sql costs about as much as the SQL it
// runs, so this saves two statements of the five an APPEND ran. When no
// row is updated, the separate lookup tells why.
func reserveAppend(ctx context.Context, tx *dbtx, userID, mailboxID int64, n int) (reserved, error) {
	var r reserved
	var first int64
	row := tx.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext = uidnext + ?1, highest_modseq = highest_modseq + 1
		WHERE id = ?2 AND user_id = ?3 AND NOT noselect AND uidnext + ?1 <= 4294967296
		RETURNING `+mailboxCols+`, uidnext - ?1, tombstone_count,
			(SELECT expunged_at FROM expunged WHERE mailbox_id = ?2 ORDER BY modseq LIMIT 1)`,
		n, mailboxID, userID)
	after, err := scanMailbox(scanMore{row, []any{&first, &r.tombstones, &r.oldestTombstone}})
	if errors.Is(err, sql.ErrNoRows) {
		m, err := selectable(ctx, tx, userID, mailboxID)
		if err != nil {
			return reserved{}, err
		}
		return reserved{}, fmt.Errorf("%w: mailbox %q has no UIDs left for %d messages", store.ErrInvalid, m.Name, n)
	} else if err != nil {
		return reserved{}, err
	}
	r.after, r.first = after, uint32(first)
	return r, nil
}

// scanMore scans a row into the destinations given to Scan followed by
// its own.
type scanMore struct {
	row  *sql.Row
	more []any
}

func (s scanMore) Scan(dest ...any) error { return s.row.Scan(append(dest, s.more...)...) }

// MessageIndex implements store.Messages. Messages with the same flags
// share one Flags slice (see store.MessageMeta).
//
// The index is read as three texts, one aggregate per column over the
// mailbox's primary-key range (a sequential read of the WITHOUT ROWID
// table): the driver's per-row cost (Next, Scan) dominated a
// row-per-message read, about 4x slower at 100,000 messages, and building
// one "uid modseq flags" line per message in SQL cost as much again as the
// three plain aggregates. The aggregates see the rows in the same order,
// so the texts line up. That order is the primary key's, ascending UID; it
// is checked, and the result sorted if the planner ever chose otherwise.
func (s *Store) MessageIndex(ctx context.Context, userID, mailboxID int64) ([]store.MessageMeta, store.Mailbox, error) {
	var metas []store.MessageMeta
	var mb store.Mailbox
	err := s.read(ctx, func(tx *dbtx) error {
		var err error
		if mb, err = selectable(ctx, tx, userID, mailboxID); err != nil {
			return err
		}
		var uids, modseqs, flags sql.NullString
		if err := tx.QueryRowContext(ctx, indexQuery, mb.ID).Scan(&uids, &modseqs, &flags); err != nil {
			return err
		}
		metas, err = parseIndex(nil, uids.String, modseqs.String, flags.String)
		return err
	})
	if err != nil {
		return nil, store.Mailbox{}, err
	}
	return metas, mb, nil
}

// indexQuery reads the index of a mailbox for parseIndex. The newline
// separator is a literal: char(10) would be evaluated again for every row.
// "uid > 0" (always true) makes the primary key, in UID order, the best
// plan: messages_modseq covers the query too, in MODSEQ order, which
// parseIndex would have to sort.
const indexQuery = `SELECT group_concat(uid, ','), group_concat(modseq, ','), group_concat(flags, '` + "\n" + `')
	FROM messages WHERE mailbox_id = ? AND uid > 0`

// parseIndex parses MessageIndex's three aggregates, UIDs and MODSEQs
// separated by commas and flag texts separated by newlines (neither can
// occur in a flag), the same number of each, and appends the messages to
// dst sorted by UID.
func parseIndex(dst []store.MessageMeta, uids, modseqs, flags string) ([]store.MessageMeta, error) {
	if uids == "" {
		return dst, nil
	}
	n := strings.Count(uids, ",") + 1
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	metas := dst[start:]
	var in flagInterner
	sorted := true
	prev := uint32(0)
	for i := range metas {
		uid, rest, ok1 := cutNumber(uids, 1<<32-1)
		modseq, mrest, ok2 := cutNumber(modseqs, 1<<63-1)
		if !ok1 || !ok2 || uid == 0 || modseq == 0 || (i < n-1) != (rest != "") || (i < n-1) != (mrest != "") {
			return nil, fmt.Errorf("sqlite: corrupt message index at message %d of %d", i+1, n)
		}
		uids, modseqs = rest, mrest
		f := flags
		if j := strings.IndexByte(flags, '\n'); j >= 0 {
			f, flags = flags[:j], flags[j+1:]
		} else if i < n-1 {
			return nil, fmt.Errorf("sqlite: corrupt message index: flags of %d messages for %d", i+1, n)
		} else {
			flags = ""
		}
		if uint32(uid) <= prev {
			sorted = false
		}
		prev = uint32(uid)
		metas[i] = store.MessageMeta{UID: uint32(uid), ModSeq: modseq, Flags: in.flags(f)}
	}
	if flags != "" {
		return nil, fmt.Errorf("sqlite: corrupt message index: flags of more than %d messages", n)
	}
	if !sorted {
		slices.SortFunc(metas, func(a, b store.MessageMeta) int { return cmp.Compare(a.UID, b.UID) })
	}
	return dst, nil
}

// cutNumber parses the decimal number at the start of s, up to max, and
// returns it with what follows its comma. ok is false if s does not start
// with a number that fits, followed by a comma or the end.
func cutNumber(s string, max uint64) (v uint64, rest string, ok bool) {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == ',' {
			break
		}
		if c < '0' || c > '9' || v > (max-uint64(c-'0'))/10 {
			return 0, "", false
		}
		v = v*10 + uint64(c-'0')
	}
	if i == 0 {
		return 0, "", false
	}
	if i < len(s) {
		i++ // the comma
		if i == len(s) {
			return 0, "", false // a trailing comma
		}
	}
	return v, s[i:], true
}

// flagInterner parses stored flag strings, sharing the result between
// messages with the same flags (most messages of a mailbox have one of a
// handful of flag sets, and runs of neighbours often have the same).
// The flags it returns never point into the strings it was given, which
// may be large buffers.
type flagInterner struct {
	m         map[string][]string
	last      string
	lastFlags []string
	haveLast  bool
}

func (in *flagInterner) flags(s string) []string {
	if in.haveLast && s == in.last {
		return in.lastFlags
	}
	fs, ok := in.m[s]
	if !ok {
		if in.m == nil {
			in.m = map[string][]string{}
		}
		s = strings.Clone(s)
		fs = slices.Clip(storeutil.ParseFlags(s))
		if len(in.m) < 1024 {
			in.m[s] = fs
		}
	}
	in.last, in.lastFlags, in.haveLast = s, fs, true
	return fs
}

// MessageInfos implements store.Messages. A set of one range (a FETCH
// of one message, of n:m) is one statement on the reader pool that also
// checks the mailbox; more ranges are read in one transaction.
func (s *Store) MessageInfos(ctx context.Context, userID, mailboxID int64, uids []uint32) ([]store.MessageInfo, error) {
	runs := uidRuns(uids)
	var sc infoScanner
	sc.grow(len(uids))
	if len(runs) == 1 {
		rows, err := s.readers().QueryContext(ctx, `SELECT `+infoCols+` FROM mailboxes x
			JOIN messages m ON m.mailbox_id = x.id LEFT JOIN structures s ON s.body_id = m.body_id
			WHERE x.id = ? AND x.user_id = ? AND NOT x.noselect AND m.uid BETWEEN ? AND ? ORDER BY m.uid`,
			mailboxID, userID, runs[0].lo, runs[0].hi)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			if _, err := sc.scan(rows); err != nil {
				rows.Close()
				return nil, err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(sc.infos) == 0 {
			// None: the mailbox may be the reason.
			if _, err := selectable(ctx, s.readers(), userID, mailboxID); err != nil {
				return nil, err
			}
		}
		return sc.done(), nil
	}
	err := s.read(ctx, func(tx *dbtx) error {
		sc = infoScanner{}
		sc.grow(len(uids))
		m, err := selectable(ctx, tx, userID, mailboxID)
		if err != nil {
			return err
		}
		if len(runs) > maxRunQueries {
			sc.only = runs // queryRuns reads the whole span
		}
		_, err = queryRuns(ctx, tx, runs,
			`SELECT `+infoCols+` FROM messages m LEFT JOIN structures s ON s.body_id = m.body_id
			WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`, []any{m.ID},
			func(rows *sql.Rows) (struct{}, uint32, error) {
				uid, err := sc.scan(rows)
				return struct{}{}, uid, err
			})
		return err
	})
	if err != nil {
		return nil, err
	}
	return sc.done(), nil
}

// infoCols are the columns infoScanner reads, messages as m and
// structures as s.
const infoCols = `m.uid, m.modseq, m.flags, m.internal_date, m.internal_tz, m.size, s.data`

// infoScanner collects MessageInfos from rows of infoCols. The
// structures are copied into one buffer, not one allocation each.
type infoScanner struct {
	in    flagInterner
	only  []uidRange // when set, rows of other UIDs are skipped
	infos []store.MessageInfo
	arena []byte
	spans [][2]int // each info's structure in arena; -1: none
	raw   sql.RawBytes
}

// grow makes room for about n messages (the UIDs asked for, some of
// which may not exist), so that the slices are allocated once.
func (sc *infoScanner) grow(n int) {
	n = min(n, 4096)
	sc.infos = make([]store.MessageInfo, 0, n)
	sc.spans = make([][2]int, 0, n)
	sc.arena = make([]byte, 0, n*structureGuess)
}

// structureGuess is a typical size of a stored structure: a multipart
// message with an envelope of a few addresses.
const structureGuess = 768

func (sc *infoScanner) scan(rows *sql.Rows) (uint32, error) {
	var info store.MessageInfo
	var uid, modseq, date, tz int64
	var flags string
	if err := rows.Scan(&uid, &modseq, &flags, &date, &tz, &info.Size, &sc.raw); err != nil {
		return 0, err
	}
	if sc.only != nil && !inRuns(sc.only, uint32(uid)) {
		return uint32(uid), nil
	}
	info.UID, info.ModSeq, info.Flags = uint32(uid), uint64(modseq), sc.in.flags(flags)
	info.InternalDate = decodeDate(date, tz)
	span := [2]int{-1, -1}
	if sc.raw != nil {
		span = [2]int{len(sc.arena), len(sc.arena) + len(sc.raw)}
		sc.arena = append(sc.arena, sc.raw...)
	}
	sc.infos = append(sc.infos, info)
	sc.spans = append(sc.spans, span)
	return info.UID, nil
}

// done points the infos at their structures and returns them.
func (sc *infoScanner) done() []store.MessageInfo {
	for i := range sc.infos {
		if sp := sc.spans[i]; sp[0] >= 0 {
			sc.infos[i].Structure = sc.arena[sp[0]:sp[1]:sp[1]]
		}
	}
	return sc.infos
}

// MessageBody implements store.Messages. ErrNotFound if the message does
// not exist (any more).
func (s *Store) MessageBody(ctx context.Context, userID, mailboxID int64, uid uint32) ([]byte, error) {
	data, file, size, err := s.bodyRow(ctx, userID, mailboxID, uid)
	if err != nil {
		return nil, err
	}
	if file.Valid {
		b, err := s.files.read(file.String, size)
		if errors.Is(err, fs.ErrNotExist) {
			// Expunged since the row was read, and removed.
			return nil, fmt.Errorf("%w: message UID %d", store.ErrNotFound, uid)
		}
		return b, err
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// OpenBody implements store.Messages: a body kept in a file is read from
// the open file as the caller goes; one in the database is copied once,
// into a buffer from the store's pool that Close gives back.
func (s *Store) OpenBody(ctx context.Context, userID, mailboxID int64, uid uint32) (store.Body, error) {
	rows, err := s.readers().QueryContext(ctx, bodyQuery, mailboxID, userID, uid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		rows.Close()
		return nil, s.noBody(ctx, userID, mailboxID, uid)
	}
	var data sql.RawBytes
	var file sql.NullString
	var size int64
	if err := rows.Scan(&data, &file, &size); err != nil {
		return nil, err
	}
	if !file.Valid {
		return s.memBody(data), nil
	}
	rows.Close()
	b, err := s.files.open(file.String, size)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: message UID %d", store.ErrNotFound, uid)
	}
	return b, err
}

// maxPooledBody is the largest buffer the body pool keeps.
const maxPooledBody = 256 << 10

// memBody copies data into a pooled buffer.
func (s *Store) memBody(data []byte) *memBody {
	bp, _ := s.bodyBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < len(data) {
		b := make([]byte, 0, max(len(data), 64<<10))
		bp = &b
	}
	return &memBody{b: append((*bp)[:0], data...), buf: bp, pool: &s.bodyBufs}
}

// MessagePrefixes implements store.Messages: one statement for all the
// requests; only the prefixes reach Go (SQLite cuts a body kept in the
// database with substr; a file is read in part).
func (s *Store) MessagePrefixes(ctx context.Context, userID, mailboxID int64, reqs []store.PrefixRequest) ([][]byte, error) {
	out := make([][]byte, len(reqs))
	if len(reqs) == 0 {
		_, err := selectable(ctx, s.readers(), userID, mailboxID)
		return out, err
	}
	if out, ok, err := s.headersInRange(ctx, userID, mailboxID, reqs); ok || err != nil {
		return out, err
	}
	// The requests as a JSON array of integers, uid<<31 | hdr<<30 | n
	// (hdr: the stored header is asked for): SQLite parses the array
	// once and takes each integer apart with shifts (extracting from
	// [uid, n] pairs parsed each pair again for every use). n is capped
	// at 2^30-1: no message is that large.
	list := make([]byte, 0, 16*len(reqs))
	list = append(list, '[')
	for i, r := range reqs {
		if i > 0 {
			list = append(list, ',')
		}
		v := uint64(r.UID)<<31 | uint64(min(r.N, 1<<30-1))
		if r.N < 0 {
			v = uint64(r.UID)<<31 | 1<<30
		}
		list = strconv.AppendUint(list, v, 10)
	}
	list = append(list, ']')
	type fileReq struct {
		i    int
		name string
		n    int64
	}
	var files []fileReq
	rows, err := s.readers().QueryContext(ctx, prefixQuery, mailboxID, userID, string(list))
	if err != nil {
		return nil, err
	}
	found := 0
	for rows.Next() {
		var i, n int64
		var hdrOnly bool
		var data []byte
		var file sql.NullString
		if err := rows.Scan(&i, &hdrOnly, &data, &file, &n); err != nil {
			rows.Close()
			return nil, err
		}
		if i < 0 || i >= int64(len(out)) {
			continue
		}
		found++
		if hdrOnly {
			out[i] = data // nil: no header kept
			continue
		}
		if file.Valid {
			files = append(files, fileReq{int(i), file.String, n})
			continue
		}
		if data == nil {
			data = []byte{}
		}
		out[i] = data
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if found == 0 {
		// None: the mailbox may be the reason.
		if _, err := selectable(ctx, s.readers(), userID, mailboxID); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		b, err := s.files.open(f.name, f.n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // expunged meanwhile
		} else if err != nil {
			return nil, err
		}
		buf := make([]byte, f.n)
		k, err := b.ReadAt(buf, 0)
		b.Close()
		if k < len(buf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		out[f.i] = buf
	}
	return out, nil
}

// headersInRange answers MessagePrefixes when every request asks for the
// stored header (N < 0), the UIDs ascend and they fill most of the range
// they span (a SEARCH of a header field over the mailbox): one scan of
// the range in primary key order, with no JSON list to take apart and no
// lookup per request. ok is false when the requests are of another shape.
func (s *Store) headersInRange(ctx context.Context, userID, mailboxID int64, reqs []store.PrefixRequest) (out [][]byte, ok bool, err error) {
	for i, r := range reqs {
		if r.N >= 0 || r.UID == 0 || i > 0 && r.UID <= reqs[i-1].UID {
			return nil, false, nil
		}
	}
	lo, hi := reqs[0].UID, reqs[len(reqs)-1].UID
	if int64(hi-lo)+1 > 2*int64(len(reqs)) {
		return nil, false, nil
	}
	out = make([][]byte, len(reqs))
	rows, err := s.readers().QueryContext(ctx, headerRangeQuery, mailboxID, userID, lo, hi)
	if err != nil {
		return nil, true, err
	}
	found, j := 0, 0
	for rows.Next() {
		var uid int64
		var data []byte
		if err := rows.Scan(&uid, &data); err != nil {
			rows.Close()
			return nil, true, err
		}
		for j < len(reqs) && int64(reqs[j].UID) < uid {
			j++
		}
		if j == len(reqs) {
			break
		}
		if int64(reqs[j].UID) == uid {
			out[j] = data // nil: no header kept
			found++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, true, err
	}
	if found == 0 {
		// None: the mailbox may be the reason.
		if _, err := selectable(ctx, s.readers(), userID, mailboxID); err != nil {
			return nil, true, err
		}
	}
	return out, true, nil
}

// headerRangeQuery reads the stored headers (schema v7; NULL where none
// is kept) of a mailbox's messages with UIDs from ?3 to ?4, in UID order,
// and checks the mailbox.
const headerRangeQuery = `SELECT m.uid, h.data FROM mailboxes x
	JOIN messages m ON m.mailbox_id = x.id
	LEFT JOIN headers h ON h.body_id = m.body_id
	WHERE x.id = ?1 AND x.user_id = ?2 AND NOT x.noselect AND m.uid BETWEEN ?3 AND ?4
	ORDER BY m.uid`

// prefixQuery reads the prefixes MessagePrefixes asks for (?3, a JSON
// array of uid<<31 | hdr<<30 | n) and checks the mailbox. CROSS JOIN keeps the order:
// one primary key lookup per request; left to itself the planner scanned
// the mailbox's messages and the requests for each.
//
// A prefix no longer than the stored header (schema v7) is cut from it,
// without the body; the body's columns are read only in the branches
// that need them (SQLite loads a column where the expression uses it).
const prefixQuery = `WITH r(k, uid, hdr, n) AS (SELECT key, value >> 31, (value >> 30) & 1, value & 1073741823 FROM json_each(?3))
	SELECT r.k, r.hdr,
		CASE WHEN r.hdr THEN h.data
			WHEN length(h.data) >= r.n THEN substr(h.data, 1, r.n)
			WHEN b.file IS NULL THEN substr(b.data, 1, r.n) END,
		CASE WHEN r.hdr OR length(h.data) >= r.n THEN NULL ELSE b.file END,
		min(m.size, r.n)
	FROM mailboxes x CROSS JOIN r
	CROSS JOIN messages m ON m.mailbox_id = x.id AND m.uid = r.uid
	JOIN bodies b ON b.id = m.body_id
	LEFT JOIN headers h ON h.body_id = m.body_id
	WHERE x.id = ?1 AND x.user_id = ?2 AND NOT x.noselect`

// bodyQuery reads a body and checks the mailbox in one statement: the
// mailbox belongs to the user and is selectable.
const bodyQuery = `SELECT b.data, b.file, m.size FROM mailboxes x
	JOIN messages m ON m.mailbox_id = x.id JOIN bodies b ON b.id = m.body_id
	WHERE x.id = ? AND x.user_id = ? AND NOT x.noselect AND m.uid = ?`

// bodyRow returns a message's body row: its data, or the name of its file
// and its size.
func (s *Store) bodyRow(ctx context.Context, userID, mailboxID int64, uid uint32) (data []byte, file sql.NullString, size int64, err error) {
	err = s.readers().QueryRowContext(ctx, bodyQuery, mailboxID, userID, uid).Scan(&data, &file, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, file, 0, s.noBody(ctx, userID, mailboxID, uid)
	}
	return data, file, size, err
}

// noBody is the error for a body bodyQuery did not find: the mailbox's,
// or the message's.
func (s *Store) noBody(ctx context.Context, userID, mailboxID int64, uid uint32) error {
	m, err := selectable(ctx, s.readers(), userID, mailboxID)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: message UID %d in %q", store.ErrNotFound, uid, m.Name)
}

// UpdateFlags implements store.Messages. UIDs that do not exist are
// ignored (in neither list). failed is ascending; changed is by ascending
// UID. Flags are normalised as in AppendMessages; an invalid flag is
// ErrInvalid and changes nothing.
func (s *Store) UpdateFlags(ctx context.Context, userID, mailboxID int64, uids []uint32, op store.FlagOp,
	flags []string, unchangedSince uint64) (changed []store.MessageMeta, failed []uint32, err error) {
	fs, err := storeutil.NormFlags(flags)
	if err != nil {
		return nil, nil, err
	}
	if op != store.FlagsSet && op != store.FlagsAdd && op != store.FlagsRemove {
		return nil, nil, fmt.Errorf("%w: flag operation %d", store.ErrInvalid, op)
	}
	runs := uidRuns(uids)
	now := s.opts.Now()
	err = s.writeMeta(ctx, func(tx *dbtx) error {
		changed, failed = nil, nil
		m, err := selectable(ctx, tx, userID, mailboxID)
		if err != nil {
			return err
		}
		// Keywords in the mailbox's spelling (flags.go); -FLAGS compares
		// case-insensitively anyway.
		mfs := fs
		if op != store.FlagsRemove {
			if mfs, err = s.spellList(ctx, tx, m.ID, fs); err != nil {
				return err
			}
		}
		type row struct {
			uid    uint32
			modseq uint64
			flags  string
		}
		rows, err := queryRuns(ctx, tx, runs,
			`SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`,
			[]any{m.ID}, func(rows *sql.Rows) (row, uint32, error) {
				var r row
				var uid, modseq int64
				err := rows.Scan(&uid, &modseq, &r.flags)
				r.uid, r.modseq = uint32(uid), uint64(modseq)
				return r, r.uid, err
			})
		if err != nil {
			return err
		}
		var updates []row
		for _, r := range rows {
			if unchangedSince != 0 && r.modseq > unchangedSince {
				failed = append(failed, r.uid)
				continue
			}
			nf, err := storeutil.ApplyFlags(r.flags, op, mfs)
			if err != nil {
				return err
			}
			if nf != r.flags {
				updates = append(updates, row{uid: r.uid, flags: nf})
			}
		}
		if len(updates) == 0 {
			return nil
		}
		modseq, err := s.bumpModSeqPurge(ctx, tx, m.ID, now)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		var in flagInterner
		changed = make([]store.MessageMeta, 0, len(updates))
		for _, u := range updates {
			if _, err := stmt.ExecContext(ctx, u.flags, modseq, m.ID, u.uid); err != nil {
				return err
			}
			changed = append(changed, store.MessageMeta{UID: u.uid, ModSeq: modseq, Flags: in.flags(u.flags)})
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return changed, failed, nil
}

// expungeUIDs removes the given existing UIDs from a mailbox, leaving
// tombstones with the given MODSEQ.
func expungeUIDs(ctx context.Context, tx *dbtx, mailboxID int64, uids []uint32, modseq uint64, now time.Time) error {
	tx.freesBodies = true
	del, err := tx.PrepareContext(ctx, `DELETE FROM messages WHERE mailbox_id = ? AND uid = ?`)
	if err != nil {
		return err
	}
	defer del.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	at := now.Unix()
	for _, uid := range uids {
		if _, err := del.ExecContext(ctx, mailboxID, uid); err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, mailboxID, uid, modseq, at); err != nil {
			return err
		}
	}
	return nil
}

func scanUID(rows *sql.Rows) (uint32, uint32, error) {
	var uid int64
	err := rows.Scan(&uid)
	return uint32(uid), uint32(uid), err
}

// Expunge implements store.Messages. The returned UIDs are ascending.
func (s *Store) Expunge(ctx context.Context, userID, mailboxID int64, uids []uint32) ([]uint32, error) {
	runs := uidRuns(uids)
	now := s.opts.Now()
	var removed []uint32
	err := s.writeMeta(ctx, func(tx *dbtx) error {
		removed = nil
		m, err := selectable(ctx, tx, userID, mailboxID)
		if err != nil {
			return err
		}
		existing, err := queryRuns(ctx, tx, runs,
			`SELECT uid FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`, []any{m.ID}, scanUID)
		if err != nil || len(existing) == 0 {
			return err
		}
		modseq, err := bumpModSeq(ctx, tx, m.ID)
		if err != nil {
			return err
		}
		if err := expungeUIDs(ctx, tx, m.ID, existing, modseq, now); err != nil {
			return err
		}
		if err := s.purgeTombstones(ctx, tx, m.ID, now); err != nil {
			return err
		}
		removed = existing
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// CopyMessages implements store.Messages. The copies are recent in the
// destination (their UIDs are at least its FirstRecentUID). Copying into
// the source mailbox itself is allowed (the copies get new UIDs). UIDs that
// do not exist are ignored; if none exist, nothing changes and dst is the
// destination as it is.
func (s *Store) CopyMessages(ctx context.Context, userID, srcID, dstID int64, uids []uint32) (srcUIDs, dstUIDs []uint32, dst store.Mailbox, err error) {
	return s.copyMessages(ctx, userID, srcID, dstID, uids, false)
}

// MoveMessages implements store.Messages (RFC 6851): copy and expunge in
// one transaction, the source getting tombstones with its own new MODSEQ.
// Moving into the source mailbox itself gives the messages new UIDs.
func (s *Store) MoveMessages(ctx context.Context, userID, srcID, dstID int64, uids []uint32) (srcUIDs, dstUIDs []uint32, dst store.Mailbox, err error) {
	return s.copyMessages(ctx, userID, srcID, dstID, uids, true)
}

func (s *Store) copyMessages(ctx context.Context, userID, srcID, dstID int64, uids []uint32, move bool) (srcUIDs, dstUIDs []uint32, dst store.Mailbox, err error) {
	runs := uidRuns(uids)
	now := s.opts.Now()
	err = s.write(ctx, func(tx *dbtx) error {
		srcUIDs, dstUIDs = nil, nil
		src, err := selectable(ctx, tx, userID, srcID)
		if err != nil {
			return err
		}
		d, err := selectable(ctx, tx, userID, dstID)
		if err != nil {
			return err
		}
		type row struct {
			uid            uint32
			flags          string
			date, tz, size int64
			bodyID         int64
		}
		rows, err := queryRuns(ctx, tx, runs,
			`SELECT uid, flags, internal_date, internal_tz, size, body_id FROM messages
			WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`, []any{src.ID},
			func(rows *sql.Rows) (row, uint32, error) {
				var r row
				var uid int64
				err := rows.Scan(&uid, &r.flags, &r.date, &r.tz, &r.size, &r.bodyID)
				r.uid = uint32(uid)
				return r, r.uid, err
			})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			dst = d
			return nil
		}
		after, first, err := reserveUIDs(ctx, tx, d, len(rows))
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages
			(mailbox_id, uid, modseq, flags, internal_date, internal_tz, size, body_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		su := make([]uint32, len(rows))
		du := make([]uint32, len(rows))
		for i, r := range rows {
			uid := first + uint32(i)
			// Keywords in the destination's spelling (flags.go).
			flags, err := s.spell(ctx, tx, d.ID, r.flags)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, d.ID, uid, after.HighestModSeq, flags, r.date, r.tz, r.size, r.bodyID); err != nil {
				return err
			}
			su[i], du[i] = r.uid, uid
		}
		if move {
			// One new MODSEQ per mailbox per transaction: moving within
			// a mailbox reuses the one the copies got.
			modseq := after.HighestModSeq
			if src.ID != d.ID {
				if modseq, err = bumpModSeq(ctx, tx, src.ID); err != nil {
					return err
				}
			}
			if err := expungeUIDs(ctx, tx, src.ID, su, modseq, now); err != nil {
				return err
			}
			if err := s.purgeTombstones(ctx, tx, src.ID, now); err != nil {
				return err
			}
		}
		if err := s.purgeTombstones(ctx, tx, d.ID, now); err != nil {
			return err
		}
		srcUIDs, dstUIDs, dst = su, du, after
		return nil
	})
	if err != nil {
		return nil, nil, store.Mailbox{}, err
	}
	return srcUIDs, dstUIDs, dst, nil
}

// ChangesSince implements store.Messages. Complete is true when modseq is
// at least the mailbox's vanished floor (the highest MODSEQ of a purged
// tombstone), so that every expunge after modseq still has its tombstone.
//
// It is one statement (one snapshot, no transaction to begin and end):
// every write refreshes the shared index with it, so it is on the path
// of every STORE, APPEND and EXPUNGE.
func (s *Store) ChangesSince(ctx context.Context, userID, mailboxID int64, modseq uint64) (store.Changes, error) {
	rows, err := s.readers().QueryContext(ctx, changesQuery, mailboxID, userID, int64(min(modseq, 1<<63-1)))
	if err != nil {
		return store.Changes{}, err
	}
	defer rows.Close()
	var ch store.Changes
	var in flagInterner
	found, noselect := false, false
	var name string
	for rows.Next() {
		var kind, a, b int64
		var text string
		if err := rows.Scan(&kind, &a, &b, &text); err != nil {
			return store.Changes{}, err
		}
		switch kind {
		case 0: // the mailbox: highest_modseq, vanished_floor, noselect, name
			found, noselect, name = true, text[0] == '1', text[1:]
			ch.HighestModSeq = uint64(a)
			ch.Complete = modseq >= uint64(b)
		case 1: // a changed message: uid, modseq, flags
			ch.Changed = append(ch.Changed, store.MessageMeta{UID: uint32(a), ModSeq: uint64(b), Flags: in.flags(text)})
		case 2: // a tombstone: uid
			ch.Vanished = append(ch.Vanished, uint32(a))
		}
	}
	if err := rows.Err(); err != nil {
		return store.Changes{}, err
	}
	switch {
	case !found:
		return store.Changes{}, fmt.Errorf("%w: mailbox id %d", store.ErrNotFound, mailboxID)
	case noselect:
		return store.Changes{}, fmt.Errorf("%w: %q", store.ErrNoSelect, name)
	}
	// Both came through the (mailbox_id, modseq) indexes; sorted by UID
	// here, on the (usually small) result.
	slices.SortFunc(ch.Changed, func(a, b store.MessageMeta) int { return cmp.Compare(a.UID, b.UID) })
	slices.Sort(ch.Vanished)
	return ch, nil
}

// changesQuery is ChangesSince's statement: the mailbox's row (kind 0;
// the text is noselect then the name), the messages changed after ?3
// (kind 1) and the tombstones after it (kind 2), the last two only when
// the mailbox is the user's.
const changesQuery = `SELECT 0, highest_modseq, vanished_floor, noselect || name FROM mailboxes WHERE id = ?1 AND user_id = ?2
	UNION ALL
	SELECT 1, uid, modseq, flags FROM messages WHERE mailbox_id = ?1 AND modseq > ?3
		AND EXISTS (SELECT 1 FROM mailboxes WHERE id = ?1 AND user_id = ?2)
	UNION ALL
	SELECT 2, uid, 0, '' FROM expunged WHERE mailbox_id = ?1 AND modseq > ?3
		AND EXISTS (SELECT 1 FROM mailboxes WHERE id = ?1 AND user_id = ?2)`
