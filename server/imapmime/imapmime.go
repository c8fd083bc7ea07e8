// Package imapmime writes the MIME structure the message package parses
// in IMAP syntax: the FETCH items ENVELOPE, BODY and BODYSTRUCTURE
// (RFC 3501 §7.4.2). The message package knows MIME only; this is the
// protocol side of it, used by the server's FETCH.
package imapmime

import (
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/wire"
)

// WriteEnvelope writes the ENVELOPE of the message p (a root or an
// encapsulated message) with RFC 3501 §7.4.2 syntax:
//
//	(date subject from sender reply-to to cc bcc in-reply-to message-id)
//
// A part without an envelope gets one of NILs.
func WriteEnvelope(enc *wire.Encoder, p *message.Part) {
	e := p.Envelope
	if e == nil {
		e = &message.Envelope{}
	}
	enc.Special('(')
	envString(enc, e, e.Date, message.EnvDate)
	enc.SP()
	envString(enc, e, e.Subject, message.EnvSubject)
	enc.SP()
	writeAddrs(enc, e.From)
	enc.SP()
	sender, replyTo := e.Sender, e.ReplyTo
	if len(sender) == 0 {
		sender = e.From
	}
	if len(replyTo) == 0 {
		replyTo = e.From
	}
	writeAddrs(enc, sender)
	enc.SP()
	writeAddrs(enc, replyTo)
	enc.SP()
	writeAddrs(enc, e.To)
	enc.SP()
	writeAddrs(enc, e.Cc)
	enc.SP()
	writeAddrs(enc, e.Bcc)
	enc.SP()
	envString(enc, e, e.InReplyTo, message.EnvInReplyTo)
	enc.SP()
	envString(enc, e, e.MessageID, message.EnvMessageID)
	enc.Special(')')
}

func nstring(enc *wire.Encoder, s string) { enc.NString(s, s != "") }

// envString writes the envelope field s whose Envelope.Empty bit is bit:
// NIL when it is absent, "" when it is present but empty.
func envString(enc *wire.Encoder, e *message.Envelope, s string, bit uint8) {
	enc.NString(s, s != "" || e.Empty&bit != 0)
}

func writeAddrs(enc *wire.Encoder, as []message.Address) {
	if len(as) == 0 {
		enc.NIL()
		return
	}
	enc.Special('(')
	for _, a := range as {
		switch a.Kind {
		case message.AddrGroupStart:
			enc.Atom("(NIL NIL ").String(a.Mailbox).Atom(" NIL)")
		case message.AddrGroupEnd:
			enc.Atom("(NIL NIL NIL NIL)")
		default:
			enc.Special('(')
			nstring(enc, a.Name)
			enc.SP()
			nstring(enc, a.ADL)
			enc.SP().String(a.Mailbox).SP().String(a.Host).Special(')')
		}
	}
	enc.Special(')')
}

// WriteBodyStructure writes the body structure of the message p: BODY
// (extended false) or BODYSTRUCTURE (extended true, with the extension
// data: MD5, disposition, language and location; for multiparts the
// parameters, disposition, language and location), RFC 3501 §7.4.2.
func WriteBodyStructure(enc *wire.Encoder, p *message.Part, extended bool) {
	enc.Special('(')
	if p.IsMultipart() {
		for _, c := range p.Children {
			WriteBodyStructure(enc, c, extended)
		}
		enc.SP().String(p.Subtype)
		if extended {
			enc.SP()
			writeParams(enc, p.Params)
			enc.SP()
			writeExt(enc, p)
		}
		enc.Special(')')
		return
	}
	enc.String(p.Type).SP().String(p.Subtype).SP()
	writeParams(enc, p.Params)
	enc.SP()
	nstring(enc, p.ID)
	enc.SP()
	nstring(enc, p.Description)
	enc.SP().String(p.Encoding).SP().Number64(uint64(p.Size()))
	switch {
	case p.Message != nil:
		enc.SP()
		WriteEnvelope(enc, p.Message)
		enc.SP()
		WriteBodyStructure(enc, p.Message, extended)
		enc.SP().Number64(uint64(p.Lines))
	case p.Type == "TEXT":
		enc.SP().Number64(uint64(p.Lines))
	}
	if extended {
		enc.SP()
		nstring(enc, p.MD5)
		enc.SP()
		writeExt(enc, p)
	}
	enc.Special(')')
}

// writeExt writes body-fld-dsp SP body-fld-lang SP body-fld-loc.
func writeExt(enc *wire.Encoder, p *message.Part) {
	if p.Disposition == "" {
		enc.NIL()
	} else {
		enc.Special('(').String(p.Disposition).SP()
		writeParams(enc, p.DispParams)
		enc.Special(')')
	}
	enc.SP()
	switch len(p.Language) {
	case 0:
		enc.NIL()
	case 1:
		enc.String(p.Language[0])
	default:
		enc.Special('(')
		for i, l := range p.Language {
			if i > 0 {
				enc.SP()
			}
			enc.String(l)
		}
		enc.Special(')')
	}
	enc.SP()
	nstring(enc, p.Location)
}

func writeParams(enc *wire.Encoder, ps []message.Param) {
	if len(ps) == 0 {
		enc.NIL()
		return
	}
	enc.Special('(')
	for i, q := range ps {
		if i > 0 {
			enc.SP()
		}
		enc.String(q.Name).SP().String(q.Value)
	}
	enc.Special(')')
}
