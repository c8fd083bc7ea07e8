package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// migration brings the schema from version i to version i+1
// (migrations()[i]); it runs in the transaction that records the new
// version, so a failure leaves the old version (PostgreSQL's DDL is
// transactional).
type migration func(ctx context.Context, tx pgx.Tx) error

// migrations lists every schema change in order. Append, never edit: a
// released version's migration is history. (A function, not a variable:
// the package has no mutable state.)
func migrations() []migration {
	return []migration{
		migrateV1,
		migrateV2,
	}
}

// SchemaVersion is the schema version this code reads and writes.
func SchemaVersion() int { return len(migrations()) }

// migrationLock is the key of the advisory lock that serialises schema
// migrations between processes opening the same database at once
// ("quickimp" in ASCII).
const migrationLock int64 = 0x717569636b696d70

// schemaV1 is the first schema.
//
// Conventions:
//   - UIDs, UIDVALIDITY and UIDNEXT are 32-bit unsigned values in bigint
//     columns (UIDNEXT may reach 2^32: a mailbox whose UID space is used
//     up); MODSEQs are 63-bit.
//   - Times are Unix nanoseconds (users.created, sessions) or Unix
//     seconds plus a zone offset in seconds east of UTC
//     (messages.internal_date/_tz: INTERNALDATE keeps its zone).
//   - Names use COLLATE "C" (bytewise). The descendants of "a" are the
//     names in the half-open range ["a/", "a0"): '0' is the byte after
//     '/', so the unique (user_id, name) index answers "children of" with
//     a range scan.
//   - messages.flags is the space-separated normal form of the message's
//     flags (flags.go); seen is derived from it.
//   - mailboxes.message_count, unseen_count, total_size and
//     tombstone_count are kept by triggers, so STATUS is O(1) and no code
//     path can forget them. They update the mailbox row, which every
//     message write has locked already. The triggers are per statement
//     (with transition tables), not per row: updating one row once per
//     message in one transaction costs O(n²) in PostgreSQL (each update
//     walks the chain of the row's versions that the transaction made),
//     which made a 100,000-message insert take minutes.
//   - Bodies have their own table so that COPY shares one body between
//     messages; header (when APPEND knew its length) and structure (the
//     cached parse) are kept with it. The code deletes a body when its
//     last message goes (freeBodies).
//   - keywords holds each mailbox's spelling of its keywords (by
//     case-folded key), so that a keyword stored in another case takes the
//     spelling the mailbox already uses.
//   - counters holds the store-wide UIDVALIDITY counter.
const schemaV1 = `
CREATE TABLE counters (
	name  text COLLATE "C" PRIMARY KEY,
	value bigint NOT NULL
);

CREATE TABLE users (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name          text COLLATE "C" NOT NULL UNIQUE,
	password_hash text NOT NULL,
	created       bigint NOT NULL
);

CREATE TABLE mailboxes (
	id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	user_id          bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name             text COLLATE "C" NOT NULL,
	uidvalidity      bigint NOT NULL CHECK (uidvalidity BETWEEN 1 AND 4294967295),
	uidnext          bigint NOT NULL DEFAULT 1 CHECK (uidnext BETWEEN 1 AND 4294967296),
	highest_modseq   bigint NOT NULL DEFAULT 1 CHECK (highest_modseq >= 1),
	first_recent_uid bigint NOT NULL DEFAULT 1 CHECK (first_recent_uid >= 1),
	special_use      text NOT NULL DEFAULT '',
	noselect         boolean NOT NULL DEFAULT false,
	message_count    bigint NOT NULL DEFAULT 0,
	unseen_count     bigint NOT NULL DEFAULT 0,
	total_size       bigint NOT NULL DEFAULT 0,
	tombstone_count  bigint NOT NULL DEFAULT 0,
	vanished_floor   bigint NOT NULL DEFAULT 0,
	UNIQUE (user_id, name)
);

CREATE TABLE subscriptions (
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name    text COLLATE "C" NOT NULL,
	PRIMARY KEY (user_id, name)
);

CREATE TABLE bodies (
	id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	data      bytea NOT NULL,
	header    bytea,
	structure bytea
);

CREATE TABLE messages (
	mailbox_id    bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           bigint NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
	modseq        bigint NOT NULL CHECK (modseq >= 1),
	flags         text COLLATE "C" NOT NULL DEFAULT '',
	seen          boolean GENERATED ALWAYS AS (position(' \Seen ' in ' ' || flags || ' ') > 0) STORED,
	internal_date bigint NOT NULL,
	internal_tz   integer NOT NULL DEFAULT 0,
	size          bigint NOT NULL CHECK (size >= 0),
	body_id       bigint NOT NULL REFERENCES bodies(id),
	PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_body ON messages (body_id);

CREATE TABLE expunged (
	mailbox_id  bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid         bigint NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
	modseq      bigint NOT NULL CHECK (modseq >= 1),
	expunged_at bigint NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TABLE keywords (
	mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	key        text COLLATE "C" NOT NULL,
	spelling   text COLLATE "C" NOT NULL,
	PRIMARY KEY (mailbox_id, key)
);

CREATE TABLE sessions (
	user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	id          text COLLATE "C" NOT NULL CHECK (id != ''),
	client_ip   text COLLATE "C" NOT NULL DEFAULT '',
	created     bigint NOT NULL,
	last_active bigint NOT NULL,
	state       bytea NOT NULL,
	PRIMARY KEY (user_id, id)
);
CREATE INDEX sessions_user_active ON sessions (user_id, last_active, id);
CREATE INDEX sessions_active ON sessions (last_active);
CREATE INDEX sessions_ip ON sessions (client_ip, last_active);

CREATE FUNCTION messages_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE mailboxes m SET message_count = message_count + x.n, unseen_count = unseen_count + x.unseen,
			total_size = total_size + x.size
		FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT seen) AS unseen, sum(size) AS size
			FROM new_rows GROUP BY mailbox_id) x
		WHERE m.id = x.mailbox_id;
	ELSIF TG_OP = 'DELETE' THEN
		UPDATE mailboxes m SET message_count = message_count - x.n, unseen_count = unseen_count - x.unseen,
			total_size = total_size - x.size
		FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT seen) AS unseen, sum(size) AS size
			FROM old_rows GROUP BY mailbox_id) x
		WHERE m.id = x.mailbox_id;
	ELSE
		UPDATE mailboxes m SET message_count = message_count + x.n, unseen_count = unseen_count + x.unseen,
			total_size = total_size + x.size
		FROM (SELECT mailbox_id, sum(n) AS n, sum(unseen) AS unseen, sum(size) AS size FROM (
				SELECT mailbox_id, -1 AS n, -(NOT seen)::int AS unseen, -size AS size FROM old_rows
				UNION ALL
				SELECT mailbox_id, 1, (NOT seen)::int, size FROM new_rows) d
			GROUP BY mailbox_id) x
		WHERE m.id = x.mailbox_id AND (x.n != 0 OR x.unseen != 0 OR x.size != 0);
	END IF;
	RETURN NULL;
END;
$$;

CREATE TRIGGER messages_insert AFTER INSERT ON messages
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_counted();
CREATE TRIGGER messages_delete AFTER DELETE ON messages
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_counted();
CREATE TRIGGER messages_update AFTER UPDATE ON messages
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_counted();

CREATE FUNCTION expunged_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE mailboxes m SET tombstone_count = tombstone_count + x.n
		FROM (SELECT mailbox_id, count(*) AS n FROM new_rows GROUP BY mailbox_id) x WHERE m.id = x.mailbox_id;
	ELSE
		UPDATE mailboxes m SET tombstone_count = tombstone_count - x.n
		FROM (SELECT mailbox_id, count(*) AS n FROM old_rows GROUP BY mailbox_id) x WHERE m.id = x.mailbox_id;
	END IF;
	RETURN NULL;
END;
$$;

CREATE TRIGGER expunged_insert AFTER INSERT ON expunged
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION expunged_counted();
CREATE TRIGGER expunged_delete AFTER DELETE ON expunged
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION expunged_counted();
`

func migrateV1(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, schemaV1); err != nil {
		return err
	}
	// UIDVALIDITY values come from this store-wide counter
	// (nextUIDValidity). It starts at the store's creation time.
	_, err := tx.Exec(ctx, `INSERT INTO counters (name, value) VALUES ('uidvalidity', $1)`, time.Now().Unix()-1)
	return err
}

// migrate creates or upgrades the schema, under an advisory lock held for
// the transaction: a second process opening the database meanwhile waits,
// then finds the schema current.
func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
			return err
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version)
		switch {
		case err == pgx.ErrNoRows:
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if version > SchemaVersion() {
			return fmt.Errorf("database schema version %d is newer than this program's %d", version, SchemaVersion())
		}
		for v, m := range migrations()[version:] {
			v += version
			if err := m(ctx, tx); err != nil {
				return fmt.Errorf("migration to schema version %d: %w", v+1, err)
			}
		}
		if version != SchemaVersion() {
			if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, SchemaVersion()); err != nil {
				return err
			}
		}
		return nil
	})
}

// schemaV2 records which node holds each session and the generation of
// its last claim (store.SessionRecord.Owner, Generation), and the nodes'
// heartbeats: the sessions of a node that stopped beating count as
// inactive. Existing sessions are inactive (no owner) at generation 0.
// sessions_owner is partial: only held sessions are in it, and a node
// starting again finds its own with it (ReleaseNodeSessions).
const schemaV2 = `
ALTER TABLE sessions ADD COLUMN owner text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN generation bigint NOT NULL DEFAULT 0;
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner != '';

CREATE TABLE nodes (
	name      text COLLATE "C" PRIMARY KEY,
	heartbeat bigint NOT NULL
);
`

func migrateV2(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, schemaV2)
	return err
}
