package server

import (
	"errors"
	"strings"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server/tracker"
	"github.com/quickimap/quickimap/store"
)

// readOneMailbox reads " mailbox CRLF", the argument shape of several
// commands.
func (c *conn) readOneMailbox() (raw, name string, err error) {
	if err = c.dec.SP(); err != nil {
		return
	}
	if raw, name, err = c.readMailbox(); err != nil {
		return
	}
	err = c.dec.CRLF()
	return
}

func (c *conn) cmdCreate(tag string) (*status, error) {
	raw, name, err := c.readOneMailbox()
	if err != nil {
		return nil, err
	}
	// RFC 3501 §6.3.3: a trailing delimiter declares the intent to create
	// names under this one; the name itself is created without it.
	name = strings.TrimSuffix(name, string(imap.Delimiter))
	raw = strings.TrimSuffix(raw, string(imap.Delimiter))
	if name == imap.Inbox {
		return no("ALREADYEXISTS", "INBOX always exists"), nil
	}
	if why := validName(raw, name); why != "" {
		return no("CANNOT", why), nil
	}
	ctx := c.ctx
	all, err := c.s.store.Mailboxes(ctx, c.sess.UserID)
	if err != nil {
		return c.storeFailure(err), nil
	}
	if len(all) >= c.s.opts.MaxMailboxes {
		return no("LIMIT", "Too many mailboxes"), nil
	}
	if _, err := c.s.store.CreateMailbox(c.writeContext(), c.sess.UserID, name, ""); err != nil {
		return c.storeFailure(err), nil
	}
	return ok("CREATE completed"), nil
}

func (c *conn) cmdDelete(tag string) (*status, error) {
	_, name, err := c.readOneMailbox()
	if err != nil {
		return nil, err
	}
	if name == imap.Inbox {
		return no("CANNOT", "INBOX cannot be deleted"), nil
	}
	ctx := c.ctx
	mb, err := c.s.store.MailboxByName(ctx, c.sess.UserID, name)
	if err != nil {
		return c.storeFailure(err), nil
	}
	if err := c.s.store.DeleteMailbox(c.writeContext(), c.sess.UserID, name); err != nil {
		if errors.Is(err, store.ErrNoSelect) {
			// RFC 3501 §6.3.4: deleting a \Noselect name that has
			// inferiors is an error.
			return no("CANNOT", "Mailbox has children and no messages; delete the children first"), nil
		}
		return c.storeFailure(err), nil
	}
	c.closeIfSelected(mb.ID, goneDeleted)
	c.s.gone(mb.ID, tracker.Deleted)
	return ok("DELETE completed"), nil
}

// closeIfSelected closes the selected mailbox when it is id, which this
// session just deleted (or, for INBOX, renamed away): the session returns
// to the authenticated state, and "* OK [CLOSED] why" before the tagged OK
// tells the client so (RFC 7162 §3.2.11: CLOSED marks a mailbox closed
// implicitly). Other sessions that have it selected get a BYE instead
// (tracker.Hub.Gone).
func (c *conn) closeIfSelected(id int64, why string) {
	if c.view == nil || c.view.MailboxID() != id {
		return
	}
	c.deselect()
	c.enc.Star().Atom("OK").SP().Atom("[CLOSED] ").Text(why).CRLF()
	c.saveSession()
}

func (c *conn) cmdRename(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	_, oldName, err := c.readMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	newRaw, newName, err := c.readMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	newName = strings.TrimSuffix(newName, string(imap.Delimiter))
	newRaw = strings.TrimSuffix(newRaw, string(imap.Delimiter))
	if newName == imap.Inbox {
		return no("ALREADYEXISTS", "INBOX always exists"), nil
	}
	if why := validName(newRaw, newName); why != "" {
		return no("CANNOT", why), nil
	}
	if oldName == newName {
		return no("ALREADYEXISTS", "Mailbox already has that name"), nil
	}
	if strings.HasPrefix(newName, oldName+string(imap.Delimiter)) && oldName != imap.Inbox {
		return no("CANNOT", "Cannot move a mailbox into itself"), nil
	}
	ctx := c.ctx
	if err := c.s.store.RenameMailbox(c.writeContext(), c.sess.UserID, oldName, newName); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return no("NONEXISTENT", "No such mailbox"), nil
		}
		return c.storeFailure(err), nil
	}
	if oldName == imap.Inbox {
		// RFC 3501 §6.3.5: INBOX's messages move to the new name and
		// INBOX is left empty. The store moves INBOX itself (its id,
		// UIDVALIDITY and messages) to the new name and makes a new
		// INBOX, so a session that has INBOX selected holds what is now
		// another mailbox, and INBOX has a new UIDVALIDITY it cannot be
		// told of (UIDs must only ascend within a session). It is treated
		// like a deleted mailbox: CLOSED here, BYE for the others.
		// (Other renames keep a selected mailbox selected under its new
		// name: the same mailbox, same UIDs.)
		moved, err := c.s.store.MailboxByName(ctx, c.sess.UserID, newName)
		if err != nil {
			c.log.Warn("renamed INBOX not found", "err", err)
		} else {
			c.closeIfSelected(moved.ID, goneRenamed)
			c.s.gone(moved.ID, tracker.Renamed)
		}
	}
	return ok("RENAME completed"), nil
}

func (c *conn) cmdSubscribe(tag string) (*status, error) {
	raw, name, err := c.readOneMailbox()
	if err != nil {
		return nil, err
	}
	if why := validName(raw, name); why != "" {
		return no("CANNOT", why), nil
	}
	if err := c.s.store.Subscribe(c.writeContext(), c.sess.UserID, name); err != nil && !errors.Is(err, store.ErrExists) {
		return c.storeFailure(err), nil
	}
	return ok("SUBSCRIBE completed"), nil
}

func (c *conn) cmdUnsubscribe(tag string) (*status, error) {
	_, name, err := c.readOneMailbox()
	if err != nil {
		return nil, err
	}
	// RFC 9051 §6.3.8: unsubscribing a name that is not subscribed is
	// not an error.
	if err := c.s.store.Unsubscribe(c.writeContext(), c.sess.UserID, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return c.storeFailure(err), nil
	}
	return ok("UNSUBSCRIBE completed"), nil
}
