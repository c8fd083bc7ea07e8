package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup copies the store in dir to the new directory out while other
// processes (a running server, an import) keep using it: the copy is the
// store as it was at one instant, the database together with every body
// file it refers to. Open and Check read the copy like any store
// (`quickimap check --data out`).
//
// The database is copied with VACUUM INTO, which reads one snapshot (a
// read transaction: in WAL mode it neither blocks the writers nor waits
// for them) and writes a compact database file. Body files (files.go)
// are the difficulty: the snapshot may name a file that the server
// removes before Backup copies it, if its message is expunged meanwhile.
// Files never change once written and are removed only after the commit
// that stopped referring to them, so Backup
//
//  1. copies every file that exists in bodies/ (time T0 onwards);
//  2. copies the database (snapshot at T1 > T0);
//  3. copies the files the snapshot names that step 1 did not see (they
//     were written between T0 and T1) or saw before they were whole (a
//     file is written before the commit that names it; the snapshot has
//     each file's size);
//  4. deletes the copied files the snapshot does not name.
//
// A file named by the snapshot existed at T1; if it existed at T0 it was
// still there while step 1 listed bodies/ (it cannot go before T1), so
// only a file both written after T0 and removed after T1 before step 3
// can be missing. Then Backup starts over from step 1 (keeping what it
// copied), a few times at most: each round is short, the window is the
// copy of the database.
//
// The copy's dead_files list is emptied: the files it names were removed
// from the source and are not in the copy.
func Backup(ctx context.Context, dir, out string) (BackupStats, error) {
	return backup(ctx, dir, out, nil)
}

// Steps of a backup round, for the test hook of backup.
const (
	afterFileCopy = iota + 1 // step 1 done
	afterDatabase            // step 2 done
)

// backup is Backup; step, when not nil, is called after the steps above
// with the round's number (from 0), so that a test can write to the
// store in between.
func backup(ctx context.Context, dir, out string, step func(step, round int)) (stats BackupStats, err error) {
	hook := func(s, round int) {
		if step != nil {
			step(s, round)
		}
	}
	src, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return stats, err
	}
	if _, err := os.Stat(src); err != nil {
		return stats, fmt.Errorf("sqlite store: no store in %s: %w", dir, err)
	}
	created, err := makeEmptyDir(out)
	if err != nil {
		return stats, err
	}
	// The database is copied under a temporary name and renamed last, so
	// that an interrupted backup leaves no quickimap.db for Open to take
	// for a store. A failed one leaves nothing.
	dbPath := filepath.Join(out, FileName)
	partial := dbPath + ".partial"
	defer func() {
		if err == nil {
			return
		}
		if created {
			os.RemoveAll(out)
			return
		}
		os.RemoveAll(filepath.Join(out, bodyDir))
		for _, f := range []string{partial, partial + "-journal", dbPath} {
			os.Remove(f)
		}
	}()
	// Not query_only: SQLite refuses VACUUM INTO on such a connection,
	// although it only reads the source.
	db, err := sql.Open("sqlite", fileURI(src)+"?_busy_timeout=10000")
	if err != nil {
		return stats, fmt.Errorf("sqlite store: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	from := files{dir: filepath.Join(filepath.Dir(src), bodyDir)}
	to := files{dir: filepath.Join(out, bodyDir)}
	if err := os.Mkdir(to.dir, 0o700); err != nil {
		return stats, err
	}
	copied := map[string]bool{}
	const attempts = 5
	var missing []string
	for try := 0; try < attempts; try++ {
		// 1. Every file that exists now.
		if err := copyAllFiles(ctx, from, to, copied, &stats); err != nil {
			return stats, err
		}
		hook(afterFileCopy, try)
		// 2. The database.
		os.Remove(partial)
		if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, partial); err != nil {
			return stats, fmt.Errorf("sqlite store: copying the database: %w", err)
		}
		hook(afterDatabase, try)
		// 3. Files written since step 1, and those step 1 copied while
		// they were being written (before the commit that named them).
		names, err := referencedFiles(ctx, partial)
		if err != nil {
			return stats, err
		}
		missing = missing[:0]
		for n, size := range names {
			if copied[n] {
				if fi, err := os.Stat(to.path(n)); err == nil && fi.Size() == size {
					continue
				}
			}
			err := copyFile(from.path(n), to.path(n))
			if errors.Is(err, fs.ErrNotExist) {
				missing = append(missing, n)
				continue
			}
			if err != nil {
				return stats, err
			}
			if fi, err := os.Stat(to.path(n)); err != nil || fi.Size() != size {
				return stats, fmt.Errorf("sqlite store: body file %s does not have its messages' size %d", n, size)
			}
			if !copied[n] {
				stats.Files++
			}
			copied[n] = true
			stats.FileBytes += size
		}
		if len(missing) > 0 {
			stats.Retries++
			continue
		}
		// 4. Files the copy does not name.
		for n := range copied {
			if _, ok := names[n]; !ok {
				if err := os.Remove(to.path(n)); err != nil {
					return stats, err
				}
				stats.Files--
			}
		}
		if err := finishCopy(ctx, partial, to); err != nil {
			return stats, err
		}
		if err := os.Rename(partial, dbPath); err != nil {
			return stats, err
		}
		if err := syncDir(out); err != nil {
			return stats, err
		}
		fi, err := os.Stat(dbPath)
		if err == nil {
			stats.DatabaseBytes = fi.Size()
		}
		return stats, err
	}
	return stats, fmt.Errorf("sqlite store: body files vanished during %d attempts to copy them (such as %s): messages are being expunged too fast; try again", attempts, missing[0])
}

// BackupStats says what Backup copied.
type BackupStats struct {
	DatabaseBytes int64 // size of the database copy
	Files         int   // body files in the copy
	FileBytes     int64 // bytes of body files copied (including any deleted again)
	Retries       int   // rounds started over because a file vanished
}

// makeEmptyDir creates dir, or accepts it when it exists and is empty;
// it reports whether it created it.
func makeEmptyDir(dir string) (bool, error) {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			return false, rerr
		}
		if len(entries) > 0 {
			return false, fmt.Errorf("%s exists and is not empty", dir)
		}
		return false, nil
	}
	return err == nil, err
}

// copyAllFiles copies the files of from that are not in copied yet.
func copyAllFiles(ctx context.Context, from, to files, copied map[string]bool, stats *BackupStats) error {
	subs, err := os.ReadDir(from.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(from.dir, sub.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			n := e.Name()
			if copied[n] || !validName(n) || n[:2] != sub.Name() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			err := copyFile(from.path(n), to.path(n))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile: no longer referenced
			}
			if err != nil {
				return err
			}
			copied[n] = true
			stats.Files++
			if fi, err := os.Stat(to.path(n)); err == nil {
				stats.FileBytes += fi.Size()
			}
		}
	}
	return nil
}

// copyFile copies a body file, creating its folder; the copy is synced.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// referencedFiles returns the body files the database at path names,
// with the size of their messages.
func referencedFiles(ctx context.Context, path string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", fileURI(path)+"?_query_only=1")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT b.file, min(m.size) FROM bodies b
		JOIN messages m ON m.body_id = b.id WHERE b.file IS NOT NULL GROUP BY b.id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: reading the copy: %w", err)
	}
	defer rows.Close()
	names := map[string]int64{}
	for rows.Next() {
		var n string
		var size int64
		if err := rows.Scan(&n, &size); err != nil {
			return nil, err
		}
		if !validName(n) {
			return nil, fmt.Errorf("sqlite store: invalid body file name %q in the copy", n)
		}
		names[n] = size
	}
	return names, rows.Err()
}

// finishCopy empties the copy's dead_files, syncs the database and every
// folder of the copy.
func finishCopy(ctx context.Context, dbPath string, to files) error {
	db, err := sql.Open("sqlite", fileURI(dbPath)+"?_synchronous=FULL")
	if err != nil {
		return err
	}
	// A rollback journal, not the WAL the source may have set: the file
	// is renamed after this, and must be whole without a -wal beside it.
	// Open sets WAL mode again.
	_, err = db.ExecContext(ctx, `PRAGMA journal_mode = DELETE; DELETE FROM dead_files`)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sqlite store: finishing the copy: %w", err)
	}
	// SQLite creates the file with the umask's permissions; the copy
	// holds what the data directory does (password hashes, mail).
	if err := os.Chmod(dbPath, 0o600); err != nil {
		return err
	}
	f, err := os.Open(dbPath)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	subs, err := os.ReadDir(to.dir)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if err := syncDir(filepath.Join(to.dir, sub.Name())); err != nil {
			return err
		}
	}
	if err := syncDir(to.dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dbPath))
}
