package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/internal/storeutil"
)

const userCols = `id, name, password_hash, created`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	var created int64
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &created); err != nil {
		return store.User{}, err
	}
	u.Created = time.Unix(0, created)
	return u, nil
}

// CreateUser implements store.Store. INBOX is created even when mailboxes
// does not list it; a mailbox listed twice, or already created as the
// parent of an earlier one, gets the later entry's special-use and
// subscription.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string, mailboxes []store.NewMailbox) (store.User, error) {
	name, err := storeutil.CanonUser(name)
	if err != nil {
		return store.User{}, err
	}
	list, err := storeutil.InitialMailboxes(mailboxes)
	if err != nil {
		return store.User{}, err
	}

	created := time.Now()
	u := store.User{Name: name, PasswordHash: passwordHash, Created: time.Unix(0, created.UnixNano())}
	err = s.write(ctx, func(tx pgx.Tx) error {
		// ON CONFLICT: a concurrent CreateUser of the same name (in
		// another process too) waits for the first and then finds it.
		err := tx.QueryRow(ctx, `INSERT INTO users (name, password_hash, created) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO NOTHING RETURNING id`, name, passwordHash, created.UnixNano()).Scan(&u.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: account %q", store.ErrExists, name)
		} else if err != nil {
			return err
		}
		for _, e := range list {
			if _, err := createMailbox(ctx, tx, u.ID, e.Name, e.SpecialUse); errors.Is(err, store.ErrExists) {
				if _, err := tx.Exec(ctx, `UPDATE mailboxes SET special_use = $1 WHERE user_id = $2 AND name = $3`,
					e.SpecialUse, u.ID, e.Name); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if e.Subscribe {
				if err := subscribe(ctx, tx, u.ID, e.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// UserByName implements store.Store.
func (s *Store) UserByName(ctx context.Context, name string) (store.User, error) {
	name, err := storeutil.CanonUser(name)
	if err != nil {
		return store.User{}, fmt.Errorf("%w: account %q", store.ErrNotFound, name)
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	if err != nil {
		return store.User{}, noRows(err, "account %q", name)
	}
	return u, nil
}

// SetPasswordHash implements store.Store.
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, passwordHash string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, passwordHash, userID)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: account %d", store.ErrNotFound, userID)
	}
	return nil
}

// DeleteUser implements store.Store. The messages go first, by hand, so
// that their bodies can be freed; the foreign keys cascade to the rest.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return err
		}
		// The mailboxes in id order, as every message write locks them.
		if _, err := tx.Exec(ctx, `SELECT id FROM mailboxes WHERE user_id = $1 ORDER BY id FOR UPDATE`, userID); err != nil {
			return err
		}
		if err := deleteMessagesWhere(ctx, tx, `mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = $1)`, userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, userID)
		return err
	})
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.User, error) { return scanUser(r) })
}

// lockUser locks an account's row for the transaction (the lock that
// serialises changes to the account's mailbox hierarchy). ErrNotFound.
func lockUser(ctx context.Context, tx pgx.Tx, userID int64) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&id)
	return noRows(err, "account %d", userID)
}
