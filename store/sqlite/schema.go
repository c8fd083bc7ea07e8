package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration brings the schema from version i to version i+1 (migrations[i]);
// it runs inside the writer's transaction together with the update of
// schema_version, so a crash leaves either the old or the new version.
type migration func(ctx context.Context, tx *dbtx) error

// migrations lists every schema change in order: migrations()[i] goes from
// version i to i+1. Append, never edit: a released version's migration is
// history. (A function, not a variable: the package has no mutable state.)
func migrations() []migration {
	return []migration{
		migrateV1,
		migrateV2,
		migrateV3,
		migrateV4,
		migrateV5,
		migrateV6,
		migrateV7,
		migrateV8,
	}
}

// schemaVersion is the version this code reads and writes.
func schemaVersion() int { return len(migrations()) }

// schemaV1 is the first schema.
//
// Conventions:
//   - UIDs, UIDVALIDITY and UIDNEXT are 32-bit unsigned values kept in
//     INTEGER columns; modseqs are 63-bit.
//   - Times are Unix nanoseconds (users.created) or Unix seconds plus a
//     zone offset in seconds east of UTC (messages.internal_date/_tz: IMAP's
//     INTERNALDATE keeps its zone).
//   - Mailbox names compare with the BINARY collation (bytewise, the same
//     order as Go's string comparison). The children of "a" are the names
//     in the half-open range ["a/", "a0"): '0' is the byte after '/', so the
//     unique (user_id, name) index answers "children of" with a range scan,
//     and LIKE (case-insensitive, with wildcards) is never used for names.
//   - messages.flags is the space-separated set of the message's flags with
//     system flags in their canonical case (`\Seen`), each flag once; seen
//     is derived from it so it can never disagree.
//   - mailboxes.message_count, unseen_count and total_size are maintained by
//     triggers on messages, so STATUS is O(1) whatever the mailbox size and
//     no future code path (APPEND, COPY, MOVE, EXPUNGE, STORE) can forget
//     them. Recent is counted with a range scan of the primary key
//     (uid >= first_recent_uid), which is O(number of recent messages).
//     Check() recomputes all counters from scratch.
//   - Message bodies live in their own table so that COPY can share one body
//     between several messages; a trigger deletes a body when its last
//     message goes.
const schemaV1 = `
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created       INTEGER NOT NULL
);

CREATE TABLE mailboxes (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name             TEXT NOT NULL,
	uidvalidity      INTEGER NOT NULL CHECK (uidvalidity BETWEEN 1 AND 4294967295),
	uidnext          INTEGER NOT NULL DEFAULT 1 CHECK (uidnext BETWEEN 1 AND 4294967296),
	highest_modseq   INTEGER NOT NULL DEFAULT 1 CHECK (highest_modseq >= 1),
	first_recent_uid INTEGER NOT NULL DEFAULT 1 CHECK (first_recent_uid >= 1),
	special_use      TEXT NOT NULL DEFAULT '',
	noselect         INTEGER NOT NULL DEFAULT 0 CHECK (noselect IN (0, 1)),
	message_count    INTEGER NOT NULL DEFAULT 0,
	unseen_count     INTEGER NOT NULL DEFAULT 0,
	total_size       INTEGER NOT NULL DEFAULT 0,
	UNIQUE (user_id, name)
);

CREATE TABLE subscriptions (
	user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name    TEXT NOT NULL,
	PRIMARY KEY (user_id, name)
) WITHOUT ROWID;

CREATE TABLE bodies (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);

CREATE TABLE messages (
	mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid            INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
	modseq         INTEGER NOT NULL CHECK (modseq >= 1),
	flags          TEXT NOT NULL DEFAULT '',
	seen           INTEGER GENERATED ALWAYS AS (instr(' ' || flags || ' ', ' \Seen ') > 0) VIRTUAL,
	internal_date  INTEGER NOT NULL,
	internal_tz    INTEGER NOT NULL DEFAULT 0,
	size           INTEGER NOT NULL CHECK (size >= 0),
	body_id        INTEGER NOT NULL REFERENCES bodies(id),
	envelope       TEXT,
	body_structure TEXT,
	PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_body ON messages (body_id);

CREATE TABLE expunged (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid        INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
	modseq     INTEGER NOT NULL CHECK (modseq >= 1),
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
	UPDATE mailboxes SET
		message_count = message_count + 1,
		unseen_count = unseen_count + (NOT NEW.seen),
		total_size = total_size + NEW.size
	WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
	UPDATE mailboxes SET
		message_count = message_count - 1,
		unseen_count = unseen_count - (NOT OLD.seen),
		total_size = total_size - OLD.size
	WHERE id = OLD.mailbox_id;
	DELETE FROM bodies WHERE id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id);
END;

CREATE TRIGGER messages_update AFTER UPDATE OF mailbox_id, flags, size ON messages
WHEN OLD.mailbox_id != NEW.mailbox_id OR OLD.seen != NEW.seen OR OLD.size != NEW.size
BEGIN
	UPDATE mailboxes SET
		message_count = message_count - 1,
		unseen_count = unseen_count - (NOT OLD.seen),
		total_size = total_size - OLD.size
	WHERE id = OLD.mailbox_id;
	UPDATE mailboxes SET
		message_count = message_count + 1,
		unseen_count = unseen_count + (NOT NEW.seen),
		total_size = total_size + NEW.size
	WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER messages_body_update AFTER UPDATE OF body_id ON messages
WHEN OLD.body_id != NEW.body_id
BEGIN
	DELETE FROM bodies WHERE id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id);
END;
`

func migrateV1(ctx context.Context, tx *dbtx) error {
	if _, err := tx.ExecContext(ctx, schemaV1); err != nil {
		return err
	}
	// UIDVALIDITY values come from this store-wide counter; see
	// nextUIDValidity. It starts at the store's creation time.
	_, err := tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES ('uidvalidity', ?)`,
		time.Now().Unix()-1)
	return err
}

// migrate creates or upgrades the schema. It runs on the writer connection.
func (s *Store) migrate(ctx context.Context) error {
	return s.write(ctx, func(tx *dbtx) error {
		if _, err := tx.ExecContext(ctx,
			`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var version int
		err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
		switch {
		case err == sql.ErrNoRows:
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if version > schemaVersion() {
			return fmt.Errorf("sqlite store: database schema version %d is newer than this program's %d", version, schemaVersion())
		}
		for v, m := range migrations()[version:] {
			v += version
			if err := m(ctx, tx); err != nil {
				return fmt.Errorf("sqlite store: migration to schema version %d: %w", v+1, err)
			}
		}
		if version != schemaVersion() {
			if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, schemaVersion()); err != nil {
				return err
			}
		}
		return nil
	})
}

// schemaV2 adds what the message half of the store needs beyond version 1:
//   - bodies.structure: the opaque parse cached at APPEND time, kept with
//     the body so that copies share it;
//   - expunged.expunged_at (Unix seconds): when the tombstone was made, for
//     the tombstone window;
//   - mailboxes.tombstone_count, kept by triggers like the message
//     counters, so that checking the window's size is O(1);
//   - mailboxes.vanished_floor: the highest MODSEQ of any tombstone purged
//     from the mailbox (0: none). A change report since a MODSEQ below it
//     may miss expunges.
const schemaV2 = `
ALTER TABLE bodies ADD COLUMN structure BLOB;
ALTER TABLE expunged ADD COLUMN expunged_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN tombstone_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN vanished_floor INTEGER NOT NULL DEFAULT 0;

UPDATE mailboxes SET tombstone_count = (SELECT count(*) FROM expunged WHERE mailbox_id = mailboxes.id);

CREATE TRIGGER expunged_insert AFTER INSERT ON expunged BEGIN
	UPDATE mailboxes SET tombstone_count = tombstone_count + 1 WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER expunged_delete AFTER DELETE ON expunged BEGIN
	UPDATE mailboxes SET tombstone_count = tombstone_count - 1 WHERE id = OLD.mailbox_id;
END;
`

func migrateV2(ctx context.Context, tx *dbtx) error {
	if _, err := tx.ExecContext(ctx, schemaV2); err != nil {
		return err
	}
	// Tombstones made before the upgrade start their window now.
	_, err := tx.ExecContext(ctx, `UPDATE expunged SET expunged_at = ?`, time.Now().Unix())
	return err
}

// schemaV3 adds the resumable sessions of the reconnect draft
// (sessions.go): one row per (user, session id), removed with the user.
// Times are Unix nanoseconds. The store-wide count is kept in counters
// ('sessions') by triggers, so that the registry's global limit costs one
// row read whatever the number of sessions; cascading deletes from users
// fire the delete trigger too.
const schemaV3 = `
CREATE TABLE sessions (
	user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	id          TEXT NOT NULL CHECK (id != ''),
	client_ip   TEXT NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	last_active INTEGER NOT NULL,
	state       BLOB,
	PRIMARY KEY (user_id, id)
);
CREATE INDEX sessions_user_active ON sessions (user_id, last_active);
CREATE INDEX sessions_active ON sessions (last_active);
CREATE INDEX sessions_ip ON sessions (client_ip);

INSERT INTO counters (name, value) VALUES ('sessions', 0);

CREATE TRIGGER sessions_insert AFTER INSERT ON sessions BEGIN
	UPDATE counters SET value = value + 1 WHERE name = 'sessions';
END;

CREATE TRIGGER sessions_delete AFTER DELETE ON sessions BEGIN
	UPDATE counters SET value = value - 1 WHERE name = 'sessions';
END;
`

func migrateV3(ctx context.Context, tx *dbtx) error {
	_, err := tx.ExecContext(ctx, schemaV3)
	return err
}

// schemaV4 rebuilds messages as a WITHOUT ROWID table clustered on its
// primary key (mailbox_id, uid), with the same columns, indexes and
// triggers. A mailbox's messages are then contiguous in UID order in the
// table's own b-tree:
//   - MessageIndex (the first SELECT of a mailbox) reads uid, modseq and
//     flags in one sequential pass with no lookup per message; with the
//     rowid table it went through the primary key's separate index and
//     then found each row by rowid, about twice the work at 100,000
//     messages;
//   - an append writes one b-tree fewer (the table is the primary key
//     index), so each durable commit writes one WAL page fewer.
//
// messages_modseq gains flags: an index of a WITHOUT ROWID table holds the
// primary key, so (mailbox_id, modseq, flags) covers ChangesSince (uid,
// modseq, flags since a MODSEQ), which every refresh of a selected
// mailbox runs, without a lookup into the table per changed message. A
// flag change rewrites the entry anyway, as it changes the MODSEQ.
//
// The copy is made in primary-key order so the new b-tree is built by
// appends. DROP TABLE removes the old indexes and triggers (without
// firing any); nothing references messages by foreign key.
const schemaV4 = `
CREATE TABLE messages_v4 (
	mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid            INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
	modseq         INTEGER NOT NULL CHECK (modseq >= 1),
	flags          TEXT NOT NULL DEFAULT '',
	seen           INTEGER GENERATED ALWAYS AS (instr(' ' || flags || ' ', ' \Seen ') > 0) VIRTUAL,
	internal_date  INTEGER NOT NULL,
	internal_tz    INTEGER NOT NULL DEFAULT 0,
	size           INTEGER NOT NULL CHECK (size >= 0),
	body_id        INTEGER NOT NULL REFERENCES bodies(id),
	envelope       TEXT,
	body_structure TEXT,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

INSERT INTO messages_v4
	(mailbox_id, uid, modseq, flags, internal_date, internal_tz, size, body_id, envelope, body_structure)
	SELECT mailbox_id, uid, modseq, flags, internal_date, internal_tz, size, body_id, envelope, body_structure
	FROM messages ORDER BY mailbox_id, uid;

DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;

CREATE INDEX messages_modseq ON messages (mailbox_id, modseq, flags);
CREATE INDEX messages_body ON messages (body_id);

CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
	UPDATE mailboxes SET
		message_count = message_count + 1,
		unseen_count = unseen_count + (NOT NEW.seen),
		total_size = total_size + NEW.size
	WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
	UPDATE mailboxes SET
		message_count = message_count - 1,
		unseen_count = unseen_count - (NOT OLD.seen),
		total_size = total_size - OLD.size
	WHERE id = OLD.mailbox_id;
	DELETE FROM bodies WHERE id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id);
END;

CREATE TRIGGER messages_update AFTER UPDATE OF mailbox_id, flags, size ON messages
WHEN OLD.mailbox_id != NEW.mailbox_id OR OLD.seen != NEW.seen OR OLD.size != NEW.size
BEGIN
	UPDATE mailboxes SET
		message_count = message_count - 1,
		unseen_count = unseen_count - (NOT OLD.seen),
		total_size = total_size - OLD.size
	WHERE id = OLD.mailbox_id;
	UPDATE mailboxes SET
		message_count = message_count + 1,
		unseen_count = unseen_count + (NOT NEW.seen),
		total_size = total_size + NEW.size
	WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER messages_body_update AFTER UPDATE OF body_id ON messages
WHEN OLD.body_id != NEW.body_id
BEGIN
	DELETE FROM bodies WHERE id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id);
END;
`

func migrateV4(ctx context.Context, tx *dbtx) error {
	_, err := tx.ExecContext(ctx, schemaV4)
	return err
}

// schemaV5 moves the parsed structure of each body into a table of its
// own, structures, keyed by body id. In bodies it followed the data
// column, and SQLite reaches a column that follows a large value by
// walking the value's chain of overflow pages (one page read each, 4 KB
// apiece): FETCH ENVELOPE or BODYSTRUCTURE, and every MessageInfos, read
// the whole message to find a few hundred bytes behind it. A structure
// row is small and found by primary key.
//
// Rows go when their body goes (ON DELETE CASCADE; foreign keys are on in
// every connection). bodies.structure stays, no longer read or written:
// clearing or dropping it would rewrite every body.
const schemaV5 = `
CREATE TABLE structures (
	body_id INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
	data    BLOB NOT NULL
);
INSERT INTO structures (body_id, data) SELECT id, structure FROM bodies WHERE structure IS NOT NULL;
`

func migrateV5(ctx context.Context, tx *dbtx) error {
	_, err := tx.ExecContext(ctx, schemaV5)
	return err
}

// schemaV6 lets a body live in a file (files.go): bodies.file is its
// name under bodies/, NULL for a body kept in data. dead_files lists the
// files of deleted bodies until the writer has removed them; the trigger
// fills it in the transaction that deletes the body, however the body
// goes (expunge, mailbox or account deletion).
const schemaV6 = `
ALTER TABLE bodies ADD COLUMN file TEXT;

CREATE TABLE dead_files (name TEXT PRIMARY KEY) WITHOUT ROWID;

CREATE TRIGGER bodies_file_delete AFTER DELETE ON bodies WHEN OLD.file IS NOT NULL BEGIN
	INSERT OR IGNORE INTO dead_files (name) VALUES (OLD.file);
END;
`

func migrateV6(ctx context.Context, tx *dbtx) error {
	_, err := tx.ExecContext(ctx, schemaV6)
	return err
}

// schemaV7 keeps each message's header apart, in headers, when APPEND
// knows its length (store.NewMessage.HeaderLen): SEARCH FROM, SUBJECT or
// HEADER read it there (MessagePrefixes). From the body itself SQLite
// cuts a prefix only after loading the whole value, page by page; a
// header row is a fraction of one page. Bodies stored before keep none
// and are cut from the body as before. Rows go with their body (ON
// DELETE CASCADE).
const schemaV7 = `
CREATE TABLE headers (
	body_id INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
	data    BLOB NOT NULL
);
`

func migrateV7(ctx context.Context, tx *dbtx) error {
	_, err := tx.ExecContext(ctx, schemaV7)
	return err
}

// schemaV8 records which node holds each session and the generation of
// its last claim (store.SessionRecord.Owner, Generation), and the nodes'
// heartbeats: the sessions of a node that stopped beating count as
// inactive. Sessions stored before the upgrade are inactive (no owner)
// at generation 0. sessions_owner is partial: only held sessions are in
// it, and a node starting again finds its own with it
// (ReleaseNodeSessions).
const schemaV8 = `
ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner != '';

CREATE TABLE nodes (
	name      TEXT PRIMARY KEY,
	heartbeat INTEGER NOT NULL
) WITHOUT ROWID;
`

func migrateV8(ctx context.Context, tx *dbtx) error {
	_, err := tx.ExecContext(ctx, schemaV8)
	return err
}
