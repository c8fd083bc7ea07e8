package importer

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quickimap/quickimap/imap"
)

// A Maildir (https://cr.yp.to/proto/maildir.html) holds one message per
// file in cur/ (seen by a mail reader) and new/ (not yet); tmp/ holds
// deliveries in progress and is not read. A file in cur/ carries its
// flags in its name after ":2," (one letter each, in ASCII order):
// P passed (forwarded), R replied, S seen, T trashed, D draft,
// F flagged. Lower-case letters are keywords whose names Dovecot keeps
// in the folder's dovecot-keywords file ("0 name" per line, 0 = 'a').
//
// Maildir++ (Courier, Dovecot) keeps subfolders as sibling directories
// of cur/ named ".Sub.Folder", each a Maildir of its own: folder
// Sub/Folder. Dovecot writes the names in modified UTF-7, as IMAP
// names; they are decoded.
//
// The internal date of a message is its file's modification time: that
// is where Dovecot keeps a Maildir message's received date, and what
// mirroring tools (offlineimap, mbsync, quickimap sync) set from the
// IMAP INTERNALDATE. The Date header says when the sender wrote it,
// which is not the same. A file time has no zone: the date is stored in
// the importing machine's local zone (the same instant).

// maildirFolder is one Maildir folder of a tree.
type maildirFolder struct {
	dir  string
	name []string // path below the root; nil for the root itself
}

// maildirFile is one message file.
type maildirFile struct {
	path  string
	info  string // the letters after ":2,"
	mtime time.Time
}

// isMaildir reports whether dir looks like a Maildir: it has cur/ or new/.
func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// maildirFolders lists the root and its Maildir++ subfolders, in the
// order of their names (parents before children).
func maildirFolders(root string) ([]maildirFolder, error) {
	folders := []maildirFolder{{dir: root}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if len(n) < 2 || n[0] != '.' || n == ".." || !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, n)
		if !isMaildir(dir) {
			continue
		}
		var name []string
		for _, part := range strings.Split(n[1:], ".") {
			if part == "" {
				name = nil
				break
			}
			if dec, err := imap.DecodeMailboxName(part); err == nil {
				part = dec
			}
			name = append(name, part)
		}
		if name == nil {
			continue // ".a..b": not a folder name
		}
		folders = append(folders, maildirFolder{dir: dir, name: name})
	}
	slices.SortFunc(folders[1:], func(a, b maildirFolder) int {
		return slices.Compare(a.name, b.name)
	})
	return folders, nil
}

// maildirFiles lists the messages of a folder (cur/ and new/), oldest
// first (by modification time, then name), so that UIDs follow the
// order of arrival.
func maildirFiles(dir string) ([]maildirFile, error) {
	var files []maildirFile
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, ".") || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // renamed by a mail reader meanwhile
				}
				return nil, err
			}
			files = append(files, maildirFile{
				path:  filepath.Join(dir, sub, n),
				info:  maildirInfo(n),
				mtime: fi.ModTime(),
			})
		}
	}
	slices.SortFunc(files, func(a, b maildirFile) int {
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	return files, nil
}

// maildirInfo returns the flag letters of a file name: what follows
// ":2," (or "!2,", the separator of systems where ':' is not allowed in
// names).
func maildirInfo(name string) string {
	for _, sep := range []string{":2,", "!2,"} {
		if i := strings.LastIndex(name, sep); i >= 0 {
			return name[i+len(sep):]
		}
	}
	return ""
}

// maildirKeywords reads a folder's dovecot-keywords file: the keyword of
// each lower-case flag letter. A missing file gives none.
func maildirKeywords(dir string) map[byte]string {
	f, err := os.Open(filepath.Join(dir, "dovecot-keywords"))
	if err != nil {
		return nil
	}
	defer f.Close()
	kw := map[byte]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		num, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n >= 26 || name == "" {
			continue
		}
		kw[byte('a'+n)] = name
	}
	return kw
}

// maildirFlags turns the flag letters of a file name into IMAP flags.
func maildirFlags(info string, keywords map[byte]string) []string {
	var flags []string
	for i := 0; i < len(info); i++ {
		switch c := info[i]; c {
		case 'P':
			flags = append(flags, "$Forwarded")
		case 'R':
			flags = append(flags, `\Answered`)
		case 'S':
			flags = append(flags, `\Seen`)
		case 'T':
			flags = append(flags, `\Deleted`)
		case 'D':
			flags = append(flags, `\Draft`)
		case 'F':
			flags = append(flags, `\Flagged`)
		default:
			if kw, ok := keywords[c]; ok {
				flags = append(flags, kw)
			}
		}
	}
	return flags
}
