package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/internal/storeutil"
)

const userCols = `id, name, password_hash, created`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
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
	err = s.write(ctx, func(tx *dbtx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = ?)`, name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("%w: account %q", store.ErrExists, name)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, created) VALUES (?, ?, ?)`,
			name, passwordHash, created.UnixNano())
		if err != nil {
			return err
		}
		if u.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, e := range list {
			if _, err := createMailbox(ctx, tx, u.ID, e.Name, e.SpecialUse); errors.Is(err, store.ErrExists) {
				if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET special_use = ? WHERE user_id = ? AND name = ?`,
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
	u, err := scanUser(s.readers().QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("%w: account %q", store.ErrNotFound, name)
	}
	return u, err
}

// SetPasswordHash implements store.Store.
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, passwordHash string) error {
	return s.write(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID)
		return affectedOne(res, err, "account")
	})
}

// DeleteUser implements store.Store. The foreign keys cascade to the
// user's mailboxes, subscriptions, messages and tombstones.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	return s.write(ctx, func(tx *dbtx) error {
		tx.freesBodies = true
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, userID)
		return affectedOne(res, err, "account")
	})
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.readers().QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var users []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// affectedOne turns "no row affected" into ErrNotFound.
func affectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", store.ErrNotFound, what)
	}
	return nil
}

// requireUser returns ErrNotFound unless the account exists.
func requireUser(ctx context.Context, q querier, userID int64) error {
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)`, userID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: account %d", store.ErrNotFound, userID)
	}
	return nil
}
