package imap

// DecodeMailboxName decodes a mailbox name from modified UTF-7 (RFC 3501
// §5.1.3) into UTF-8. Being liberal in what we accept, a name that is
// already valid UTF-8 with 8-bit characters and no '&' is returned as is.
// A malformed '&...-' sequence is an error.
func DecodeMailboxName(s string) (string, error) { panic("unimplemented") }

// EncodeMailboxName encodes a UTF-8 mailbox name into modified UTF-7.
func EncodeMailboxName(s string) string { panic("unimplemented") }
