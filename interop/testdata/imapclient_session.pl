#!/usr/bin/perl
# An IMAP session through Perl's Mail::IMAPClient against a quickimap server.
#
# Usage: imapclient_session.pl HOST PORT USER PASSWORD
#
# The account must be fresh (the default mailboxes only). Prints one TAP
# line per check ("ok N - what" or "not ok N - what: got X, want Y") and a
# final plan "1..N"; exits 1 if any check failed, 2 on a fatal error.
# IMAPCLIENT_DEBUG=1 in the environment makes Mail::IMAPClient log the
# protocol to stderr. Run by interop/perl_test.go.

use strict;
use warnings;

use Mail::IMAPClient;

@ARGV == 4 or die "usage: $0 HOST PORT USER PASSWORD\n";
my ( $host, $port, $user, $password ) = @ARGV;

$| = 1;
my $n      = 0;
my $failed = 0;

sub show {
    my $v = shift;
    return 'undef' unless defined $v;
    if ( ref $v eq 'ARRAY' ) {
        return '[' . join( ', ', map { show($_) } @$v ) . ']';
    }
    $v =~ s/\r/\\r/g;
    $v =~ s/\n/\\n/g;
    $v = substr( $v, 0, 300 ) . '...' if length $v > 300;
    return "'$v'";
}

# ok(COND, WHAT, [GOT, WANT]) prints one TAP line.
sub ok {
    my ( $cond, $what, @gw ) = @_;
    $n++;
    if ($cond) {
        print "ok $n - $what\n";
        return 1;
    }
    $failed++;
    my $detail = '';
    $detail = ': got ' . show( $gw[0] ) if @gw;
    $detail .= ', want ' . show( $gw[1] ) if @gw > 1;
    print "not ok $n - $what$detail\n";
    return 0;
}

# is(GOT, WANT, WHAT) compares strings.
sub is {
    my ( $got, $want, $what ) = @_;
    my $same = defined $got && defined $want ? $got eq $want : !defined $got && !defined $want;
    return ok( $same, $what, $got, $want );
}

# is_set(GOT_ARRAYREF, WANT_ARRAYREF, WHAT) compares as sorted lists.
sub is_set {
    my ( $got, $want, $what ) = @_;
    my @g = sort( @{ $got || [] } );
    my @w = sort @$want;
    return ok( defined $got && "@g" eq "@w", $what, \@g, \@w );
}

sub last_error {
    my $imap = shift;
    my $e    = $imap->LastError;
    return defined $e && length $e ? $e : '(no error)';
}

# flags_of(IMAP, UID) gives the message's flags, sorted, as one string,
# without \Recent (which depends on which session saw the message first).
sub flags_of {
    my ( $imap, $uid ) = @_;
    my $f = $imap->flags($uid) or return undef;
    return join ' ', sort grep { lc ne '\\recent' } @$f;
}

sub connect_client {
    return Mail::IMAPClient->new(
        Server   => $host,
        Port     => $port,
        User     => $user,
        Password => $password,
        Uid      => 1,
        Ssl      => 0,
        Timeout  => 30,
        Debug    => $ENV{IMAPCLIENT_DEBUG} ? 1 : 0,
    );
}

my $imap = connect_client();
unless ($imap) {
    print "not ok 1 - connect and LOGIN: $@\n";
    print "1..1\n";
    exit 2;
}
ok( scalar $imap->IsAuthenticated, 'connect and LOGIN: authenticated' );

# --- CAPABILITY ---------------------------------------------------------
my @caps = $imap->capability;
my %cap  = map { uc($_) => 1 } @caps;
for my $c (qw(IMAP4REV1 IDLE UIDPLUS MOVE NAMESPACE)) {
    ok( $cap{$c}, "CAPABILITY lists $c", "@caps" );
}
ok( scalar $imap->imap4rev1, 'imap4rev1() is true' );
ok( scalar $imap->has_capability('UIDPLUS'), 'has_capability(UIDPLUS)' );
ok( !$imap->has_capability('X-NOT-THERE'), 'has_capability of an unknown capability is false' );

# --- LIST, LSUB, NAMESPACE -----------------------------------------------
my @defaults = qw(Archive Drafts INBOX Junk Sent Trash);
is_set( scalar $imap->folders, \@defaults, 'folders() on a fresh account' );
is_set( scalar $imap->subscribed, \@defaults, 'subscribed() on a fresh account' );
is( $imap->separator('INBOX'), '/', 'separator' );
my %special;
for my $f ( $imap->folders_hash ) {
    for my $a ( @{ $f->{attrs} } ) {
        $special{ $f->{name} } = $a if $a =~ /^\\(?:Archive|Drafts|Junk|Sent|Trash)$/i;
    }
}
is( $special{Sent},  '\\Sent',  'folders_hash: Sent has \\Sent' );
is( $special{Trash}, '\\Trash', 'folders_hash: Trash has \\Trash' );
my $ns = $imap->namespace;
ok( ref $ns eq 'ARRAY' && ref $ns->[0] eq 'ARRAY' && $ns->[0][0][1] eq '/',
    'namespace: personal namespace with "/" delimiter', $ns ? show( $ns->[0][0] ) : last_error($imap) );

# --- CREATE, SUBSCRIBE, RENAME, DELETE ------------------------------------
ok( scalar $imap->create('Perl Test'),       'create "Perl Test"' )       or print "# " . last_error($imap) . "\n";
ok( scalar $imap->create('Perl Test/Child'), 'create "Perl Test/Child"' ) or print "# " . last_error($imap) . "\n";
ok( scalar $imap->exists('Perl Test/Child'), 'exists("Perl Test/Child")' );
ok( scalar $imap->is_parent('Perl Test'), 'is_parent("Perl Test")' );
ok( !$imap->is_parent('Perl Test/Child'), 'is_parent("Perl Test/Child") is false' );
ok( !$imap->create('Perl Test'), 'create of an existing mailbox fails' );
ok( scalar $imap->LastError =~ /ALREADYEXISTS/, 'and says ALREADYEXISTS', $imap->LastError );
ok( scalar $imap->subscribe('Perl Test'), 'subscribe "Perl Test"' );
ok( scalar( grep { $_ eq 'Perl Test' } $imap->subscribed ), 'subscribed() lists "Perl Test"', scalar $imap->subscribed );
ok( scalar $imap->rename( 'Perl Test', 'Perl Renamed' ), 'rename "Perl Test" to "Perl Renamed"' )
  or print "# " . last_error($imap) . "\n";
my @after = $imap->folders;
ok( scalar( grep { $_ eq 'Perl Renamed/Child' } @after ), 'the child moved with its parent', \@after );
ok( !( grep { /^Perl Test/ } @after ), 'no "Perl Test" left after the rename', \@after );
my @under = $imap->folders('Perl Renamed');
is_set( \@under, [ 'Perl Renamed', 'Perl Renamed/Child' ], 'folders("Perl Renamed")' );
ok( scalar $imap->delete('Perl Renamed/Child'), 'delete "Perl Renamed/Child"' ) or print "# " . last_error($imap) . "\n";
ok( scalar $imap->unsubscribe('Perl Renamed'),  'unsubscribe "Perl Renamed"' )  or print "# " . last_error($imap) . "\n";
ok( scalar $imap->delete('Perl Renamed'),       'delete "Perl Renamed"' )       or print "# " . last_error($imap) . "\n";
ok( !$imap->exists('Perl Renamed'), '"Perl Renamed" is gone' );
is_set( scalar $imap->folders, \@defaults, 'folders() back to the defaults' );

# A name outside ASCII, in modified UTF-7 (RFC 3501 section 5.1.3):
# "Entwürfe".
my $utf7 = 'Entw&APw-rfe';
ok( scalar $imap->create($utf7), "create $utf7" ) or print "# " . last_error($imap) . "\n";
ok( scalar( grep { $_ eq $utf7 } $imap->folders ), "folders() lists $utf7", scalar $imap->folders );

# --- APPEND -------------------------------------------------------------
my $box = 'Perl Box';
ok( scalar $imap->create($box), "create \"$box\"" ) or print "# " . last_error($imap) . "\n";

my $m1 = join "\r\n",
  'From: Alice Example <alice@example.org>',
  'To: Bob <bob@example.com>, carol@example.net',
  'Cc: dave@example.com',
  'Subject: Plain hello from Perl',
  'Date: Thu, 01 Feb 2024 10:00:00 +0100',
  'Message-ID: <perl-1@example.org>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'Hello Bob,',
  '',
  'this is a plain message appended by Mail::IMAPClient.',
  '-- ',
  'Alice',
  '';

my $boundary = 'perl-boundary-42';
my $inner    = 'perl-inner-7';
# The parts' contents, without the CRLF before the next boundary: that
# belongs to the boundary (RFC 2046 section 5.1.1).
my $part1  = "Hall=C3=B6chen, the attachment is below.\r\nSecond line.";
my $part2  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\nOTo7PD0+P0BBQkNERUZHSElKS0xNTk9Q";
my $part31 = "Plain alternative.";
my $part32 = "<p>HTML <b>alternative</b>.</p>";
my $m2 = join "\r\n",
  'From: Erin <erin@example.org>',
  'To: alice@example.org',
  'Subject: Multipart with attachment',
  'Date: Tue, 05 Mar 2024 08:30:00 +0000',
  'Message-ID: <perl-2@example.org>',
  'MIME-Version: 1.0',
  "Content-Type: multipart/mixed; boundary=\"$boundary\"",
  '',
  'This is a multi-part message in MIME format.',
  "--$boundary",
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  $part1, "--$boundary",
  'Content-Type: application/octet-stream; name="data.bin"',
  'Content-Disposition: attachment; filename="data.bin"',
  'Content-Transfer-Encoding: base64',
  '',
  $part2, "--$boundary",
  "Content-Type: multipart/alternative; boundary=\"$inner\"",
  '',
  "--$inner",
  'Content-Type: text/plain; charset=us-ascii',
  '',
  $part31, "--$inner",
  'Content-Type: text/html; charset=us-ascii',
  '',
  $part32, "--$inner--",
  '',
  "--$boundary--",
  '';

my $m3 = join "\r\n",
  'From: Frank <frank@example.com>',
  'To: alice@example.org',
  'Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9_attached?=',
  'Date: Sun, 15 Jun 2025 12:00:00 +0200',
  'Message-ID: <perl-3@example.com>',
  'X-Priority: 1',
  '',
  'An urgent note.',
  '';

my $m4 = join "\r\n",
  'From: Grace <grace@example.com>',
  'To: alice@example.org',
  'Subject: To be deleted',
  'Date: Sun, 01 Jan 2023 00:00:00 +0000',
  'Message-ID: <perl-4@example.com>',
  '',
  'Delete me.',
  '';

my %date = (
    1 => '01-Feb-2024 10:00:00 +0100',
    2 => '05-Mar-2024 08:30:00 +0000',
    3 => '15-Jun-2025 12:00:00 +0200',
    4 => '01-Jan-2023 00:00:00 +0000',
);
my %flags = ( 1 => '\\Seen \\Flagged', 2 => '', 3 => '$Important', 4 => '' );
my %body  = ( 1 => $m1, 2 => $m2, 3 => $m3, 4 => $m4 );
my %uid;
for my $i ( 1 .. 4 ) {
    my $u = $imap->append_string( $box, $body{$i}, $flags{$i} || undef, $date{$i} );
    ok( defined $u && $u =~ /^\d+$/, "append_string message $i returns its UID (APPENDUID)", defined $u ? $u : last_error($imap) );
    $uid{$i} = $u;
}
is( join( ',', map { $uid{$_} } 1 .. 4 ), '1,2,3,4', 'the UIDs of the four messages in a new mailbox' );

# --- SELECT, STATUS -------------------------------------------------------
ok( scalar $imap->select($box), "select \"$box\"" ) or print "# " . last_error($imap) . "\n";
ok( scalar $imap->IsSelected, 'IsSelected' );
is( $imap->message_count($box), 4, 'message_count' );
is( $imap->uidnext($box), 5, 'uidnext (STATUS UIDNEXT)' );
ok( scalar $imap->uidvalidity($box) =~ /^[1-9]\d*$/, 'uidvalidity (STATUS UIDVALIDITY)', $imap->uidvalidity($box) );
is( $imap->unseen_count($box), 3, 'unseen_count' );

# --- SEARCH -------------------------------------------------------------
my @u = map { $uid{$_} } 1 .. 4;
is_set( scalar $imap->search('ALL'),    [@u],                    'search ALL' );
is_set( scalar $imap->search('UNSEEN'), [ @uid{ 2, 3, 4 } ],      'search UNSEEN' );
is_set( scalar $imap->search('SEEN'),   [ $uid{1} ],             'search SEEN' );
is_set( scalar $imap->search( 'SUBJECT', 'hello' ), [ $uid{1} ], 'search SUBJECT hello (case-insensitive substring)' );
is_set( scalar $imap->search( 'HEADER', 'X-Priority', '1' ), [ $uid{3} ], 'search HEADER X-Priority 1' );
is_set( scalar $imap->search( 'HEADER', 'Message-ID', '<perl-2@example.org>' ), [ $uid{2} ], 'search HEADER Message-ID' );
is_set( scalar $imap->search( 'SENTSINCE', '01-Jan-2025' ), [ $uid{3} ], 'search SENTSINCE 01-Jan-2025' );
is_set( scalar $imap->search( 'SENTBEFORE', '01-Feb-2024' ), [ $uid{4} ], 'search SENTBEFORE 01-Feb-2024' );
is_set( scalar $imap->sentsince( time - 86400 ), [], 'sentsince(yesterday)' );
is_set( scalar $imap->since('01-Mar-2024'),  [ @uid{ 2, 3 } ], 'since 01-Mar-2024 (INTERNALDATE)' );
is_set( scalar $imap->search( 'FLAGGED', 'SEEN' ), [ $uid{1} ], 'search FLAGGED SEEN' );
is_set( scalar $imap->search( 'KEYWORD', '$Important' ), [ $uid{3} ], 'search KEYWORD $Important' );
is_set( scalar $imap->search('OR FROM erin TO carol'), [ @uid{ 1, 2 } ], 'search OR FROM erin TO carol' );
is_set( scalar $imap->search('NOT FROM alice LARGER 300'), [ $uid{2} ], 'search NOT FROM alice LARGER 300' );
is_set( scalar $imap->search( 'BODY', 'urgent' ), [ $uid{3} ], 'search BODY urgent' );
is_set( scalar $imap->search( 'TEXT', 'Frank' ), [ $uid{3} ], 'search TEXT Frank (header text)' );
is_set( scalar $imap->search("UID $uid{2}:*"), [ @uid{ 2, 3, 4 } ], 'search UID 2:*' );

# --- FETCH --------------------------------------------------------------
my $h = $imap->fetch_hash( [@u], 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODYSTRUCTURE' );
ok( ref $h eq 'HASH' && keys %$h == 4, 'fetch_hash returns the four messages', $h ? join( ',', sort keys %$h ) : last_error($imap) );
for my $i ( 1 .. 4 ) {
    my $e = $h->{ $uid{$i} } || {};
    is( $e->{'RFC822.SIZE'}, length $body{$i}, "message $i: RFC822.SIZE" );
    is( $e->{INTERNALDATE}, $date{$i}, "message $i: INTERNALDATE as appended" );
    my $want = join ' ', sort split ' ', $flags{$i};
    is( join( ' ', sort grep { lc ne '\\recent' } split ' ', $e->{FLAGS} // '' ), $want, "message $i: FLAGS (but \\Recent)" );
    ok( defined $e->{ENVELOPE} && $e->{ENVELOPE} =~ /<?perl-$i\@example\.(?:org|com)>?/,
        "message $i: ENVELOPE has the Message-ID", $e->{ENVELOPE} );
    ok( defined $e->{BODYSTRUCTURE}, "message $i: BODYSTRUCTURE present" );
}
my $bs1 = $h->{ $uid{1} }{BODYSTRUCTURE} // '';
ok( $bs1 =~ /^"TEXT" "PLAIN" \("CHARSET" "us-ascii"\) NIL NIL "7BIT" \d+ \d+/i,
    'message 1: BODYSTRUCTURE text/plain with charset, encoding, size and lines', $bs1 );
my $env1 = $h->{ $uid{1} }{ENVELOPE} // '';
ok( $env1 =~ /^"Thu, 01 Feb 2024 10:00:00 \+0100" "Plain hello from Perl" \(\("Alice Example" NIL "alice" "example.org"\)\)/,
    'message 1: ENVELOPE date, subject and from', $env1 );

my $env = $imap->get_envelope( $uid{1} );
ok( $env, 'get_envelope message 1' ) or print "# " . last_error($imap) . "\n";
if ($env) {
    is( $env->subject, 'Plain hello from Perl', 'get_envelope: subject' );
    is( scalar $env->from_addresses, 'Alice Example <alice@example.org>', 'get_envelope: from' );
    is_set( scalar $env->to_addresses, [ 'Bob <bob@example.com>', '<carol@example.net>' ], 'get_envelope: to' );
    is_set( scalar $env->cc_addresses, ['<dave@example.com>'], 'get_envelope: cc' );
    is( $env->messageid, '<perl-1@example.org>', 'get_envelope: message-id' );
    is( $env->date,      'Thu, 01 Feb 2024 10:00:00 +0100', 'get_envelope: date' );
}

my $bs = $imap->get_bodystructure( $uid{2} );
ok( $bs, 'get_bodystructure on the multipart message' ) or print "# " . last_error($imap) . "\n";
if ($bs) {
    is( uc $bs->bodytype,    'MULTIPART', 'bodystructure: type' );
    is( uc $bs->bodysubtype, 'MIXED',     'bodystructure: subtype' );
    is( join( ' ', $bs->parts ), '1 2 3 3.1 3.2', 'bodystructure: parts' );
    my %p = map { $_->id => $_ } $bs->bodystructure;
    is( uc( $p{1}->bodytype . '/' . $p{1}->bodysubtype ), 'TEXT/PLAIN', 'part 1 is text/plain' );
    is( uc $p{1}->bodyenc, 'QUOTED-PRINTABLE', 'part 1 encoding' );
    is( $p{1}->bodysize, length $part1, 'part 1 size' );
    is( uc( $p{2}->bodytype . '/' . $p{2}->bodysubtype ), 'APPLICATION/OCTET-STREAM', 'part 2 is application/octet-stream' );
    is( uc $p{2}->bodyenc, 'BASE64', 'part 2 encoding' );
    is( $p{2}->bodysize, length $part2, 'part 2 size' );
    ok( ref $p{2}->bodyparms eq 'HASH' && ( $p{2}->bodyparms->{name} // $p{2}->bodyparms->{NAME} // '' ) eq 'data.bin',
        'part 2 parameter name=data.bin', ref $p{2}->bodyparms ? join( ',', %{ $p{2}->bodyparms } ) : $p{2}->bodyparms );
    my $disp = $p{2}->bodydisp;
    ok( ref $disp eq 'HASH' && exists $disp->{attachment} || exists $disp->{ATTACHMENT},
        'part 2 disposition attachment', ref $disp ? join( ',', keys %$disp ) : $disp );
    is( uc( $p{3}->bodytype . '/' . $p{3}->bodysubtype ), 'MULTIPART/ALTERNATIVE', 'part 3 is multipart/alternative' );
    is( uc( $p{'3.2'}->bodytype . '/' . $p{'3.2'}->bodysubtype ), 'TEXT/HTML', 'part 3.2 is text/html' );
}

# message_string: BODY[] without .PEEK, byte for byte; it also checks
# the length against RFC822.SIZE. Fetching BODY[] sets \Seen (RFC 3501
# section 6.4.5).
for my $i ( 1 .. 4 ) {
    my $s = $imap->message_string( $uid{$i} );
    ok( defined $s && $s eq $body{$i}, "message_string message $i is byte-exact",
        defined $s ? $s : last_error($imap), $body{$i} );
}
ok( flags_of( $imap, $uid{2} ) =~ /\\Seen/, 'BODY[] set \\Seen on message 2', flags_of( $imap, $uid{2} ) );
ok( scalar $imap->deny_seeing( $uid{2}, $uid{3}, $uid{4} ), 'deny_seeing messages 2, 3 and 4' );

$imap->Peek(1);
is( $imap->bodypart_string( $uid{2}, 1 ),     $part1,  'bodypart_string part 1' );
is( $imap->bodypart_string( $uid{2}, 2 ),     $part2,  'bodypart_string part 2' );
is( $imap->bodypart_string( $uid{2}, '3.1' ), $part31, 'bodypart_string part 3.1' );
is( $imap->bodypart_string( $uid{2}, '3.2' ), $part32, 'bodypart_string part 3.2' );
is( $imap->bodypart_string( $uid{2}, 2, 10, 4 ), substr( $part2, 4, 10 ), 'bodypart_string part 2 <4.10>' );
is( $imap->bodypart_string( $uid{3}, 1 ), "An urgent note.\r\n", 'bodypart_string part 1 of a single-part message' );
ok( flags_of( $imap, $uid{2} ) !~ /\\Seen/, 'BODY.PEEK left message 2 unseen', flags_of( $imap, $uid{2} ) );
my ($text1) = $m1 =~ /\r\n\r\n(.*)\z/s;
is( $imap->body_string( $uid{1} ), $text1, 'body_string (BODY[TEXT]) of message 1' );
my $hdr = $imap->parse_headers( $uid{1}, 'Subject', 'To', 'Message-ID' );
ok( $hdr && $hdr->{Subject}[0] eq 'Plain hello from Perl' && $hdr->{To}[0] eq 'Bob <bob@example.com>, carol@example.net'
      && $hdr->{'Message-ID'}[0] eq '<perl-1@example.org>' && !exists $hdr->{Date},
    'parse_headers (BODY.PEEK[HEADER.FIELDS (...)])', $hdr ? join( '|', map { "$_=@{$hdr->{$_}}" } sort keys %$hdr ) : last_error($imap) );
is( $imap->get_header( $uid{3}, 'X-Priority' ), '1', 'get_header X-Priority' );
is( $imap->size( $uid{3} ), length $m3, 'size (RFC822.SIZE)' );
is( $imap->internaldate( $uid{1} ), $date{1}, 'internaldate' );
is( $imap->subject( $uid{2} ), 'Multipart with attachment', 'subject' );

# --- STORE --------------------------------------------------------------
ok( scalar $imap->set_flag( '\\Flagged', $uid{2} ), 'set_flag \\Flagged on message 2' );
ok( scalar $imap->set_flag( '$Custom',   $uid{2} ), 'set_flag $Custom on message 2' );
is( flags_of( $imap, $uid{2} ), '$Custom \\Flagged', 'message 2 flags after set_flag' );
ok( scalar $imap->unset_flag( '\\Flagged', $uid{1} ), 'unset_flag \\Flagged on message 1' );
is( flags_of( $imap, $uid{1} ), '\\Seen', 'message 1 flags after unset_flag' );
ok( scalar $imap->see( $uid{3} ), 'see message 3' );
is( flags_of( $imap, $uid{3} ), '$Important \\Seen', 'message 3 flags after see' );
ok( scalar $imap->deny_seeing( $uid{1} ), 'deny_seeing message 1' );
is( flags_of( $imap, $uid{1} ), '', 'message 1 flags after deny_seeing' );
is_set( scalar $imap->search('UNSEEN'), [ @uid{ 1, 2, 4 } ], 'search UNSEEN after the flag changes' );
my $u4 = $uid{4};
my @st = $imap->store( $u4, '+FLAGS', '(\\Answered)' );
ok( scalar( grep { /^\* 4 FETCH \((?=.*FLAGS \([^)]*\\Answered)(?=.*UID $u4\b)/ } @st ),
    'STORE +FLAGS (not .SILENT) returns the new flags with the UID', join( '', @st ) );

# --- COPY, MOVE -----------------------------------------------------------
ok( scalar $imap->create('Perl Copy'), 'create "Perl Copy"' );
my $copied = $imap->copy( 'Perl Copy', $uid{1}, $uid{2} );
is( $copied, '1,2', 'copy messages 1 and 2 returns the new UIDs (COPYUID)' );
my $moved = $imap->move( 'Perl Moved', $uid{3} );    # creates the mailbox, COPY then \Deleted
is( $moved, '1', 'move message 3 to a new "Perl Moved" returns its new UID' );
ok( scalar $imap->exists('Perl Moved'), 'move created "Perl Moved"' );
ok( flags_of( $imap, $uid{3} ) =~ /\\Deleted/, 'move marked message 3 \\Deleted in the source', flags_of( $imap, $uid{3} ) );

# And the MOVE extension itself (RFC 6851), through tag_and_run.
my $mv = $imap->tag_and_run(qq(UID MOVE $uid{4} "Perl Moved"));
ok( $mv, 'UID MOVE of message 4' ) or print "# " . last_error($imap) . "\n";
my $mvtext = join '', @{ $mv || [] };
ok( $mvtext =~ /\[COPYUID \d+ $u4 2\]/, 'UID MOVE answers COPYUID', $mvtext );
ok( $mvtext =~ /^\* 4 EXPUNGE\r?$/m, 'UID MOVE expunges the message from the source', $mvtext );

# --- DELETE, EXPUNGE ------------------------------------------------------
is( $imap->delete_message( $uid{1} ), 1, 'delete_message message 1' );
ok( scalar $imap->expunge, 'expunge' ) or print "# " . last_error($imap) . "\n";
is_set( scalar $imap->search('ALL'), [ $uid{2} ], 'only message 2 is left' );
is( $imap->message_count($box), 1, 'message_count after expunge' );

# --- STATUS ---------------------------------------------------------------
my @status = $imap->status( 'Perl Copy', 'MESSAGES', 'UNSEEN', 'UIDNEXT', 'RECENT' );
my ($sline) = grep { /^\* STATUS/ } @status;
ok( defined $sline && $sline =~ /^\* STATUS "Perl Copy" \((.*)\)\r\n$/, 'status "Perl Copy"', $sline );
if ( defined $sline && $sline =~ /\((.*)\)/ ) {
    my %s = split ' ', $1;
    is( $s{MESSAGES}, 2, 'STATUS MESSAGES' );
    is( $s{UNSEEN},   2, 'STATUS UNSEEN (both copies unseen)' );
    is( $s{UIDNEXT},  3, 'STATUS UIDNEXT' );
}
ok( scalar $imap->select('Perl Copy'), 'select "Perl Copy"' );
is( $imap->message_string(1), $m1, 'the copy of message 1 is byte-exact' );
is( $imap->message_string(2), $m2, 'the copy of message 2 is byte-exact' );
is( flags_of( $imap, 2 ), '$Custom \\Flagged', 'the copy of message 2 kept its flags' );
ok( scalar $imap->examine('Perl Moved'), 'examine "Perl Moved"' );
is( $imap->message_string(1), $m3, 'the moved message 3 is byte-exact' );
is( $imap->message_string(2), $m4, 'the moved message 4 is byte-exact' );
ok( !$imap->store( 1, '+FLAGS', '(\\Flagged)' ), 'STORE in a mailbox opened with EXAMINE fails' );
ok( scalar $imap->close, 'close' );
ok( !defined $imap->search('ALL'), 'SEARCH fails after CLOSE (not selected)', scalar $imap->search('ALL') );

# Appending into the mailbox with the modified UTF-7 name.
my $u7 = $imap->append_string( $utf7, $m3, '\\Draft' );
is( $u7, 1, "append_string into $utf7" );
my @s7 = $imap->status( $utf7, 'MESSAGES' );
ok( scalar( grep { /^\* STATUS "?\Q$utf7\E"? \(MESSAGES 1\)/ } @s7 ), "status $utf7", join( '', @s7 ) );
ok( scalar $imap->delete($utf7), "delete $utf7" );

# A message over Maxappendstringlength (1 MiB): append_string hands it to
# append_file, which sends it in pieces.
my $big = "From: Big <big\@example.com>\r\nSubject: big one\r\nMessage-ID: <perl-big\@example.com>\r\n\r\n";
$big .= sprintf( "line %06d of a big message, padded to make it long enough.......\r\n", $_ ) for 1 .. 20000;
my $ub = $imap->append_string( 'Perl Copy', $big );
is( $ub, 3, 'append_string of a ' . length($big) . '-byte message' );
ok( scalar $imap->examine('Perl Copy'), 'examine "Perl Copy"' );
my $bigback = $imap->message_string(3);
ok( defined $bigback && $bigback eq $big, 'the big message comes back byte-exact',
    defined $bigback ? length($bigback) . ' bytes' : last_error($imap), length($big) . ' bytes' );

# --- IDLE -----------------------------------------------------------------
my $other = connect_client();
ok( $other && $other->IsAuthenticated, 'a second connection logs in' );
if ( $other && $imap->select($box) ) {
    my $tag = $imap->idle;
    ok( $tag, 'idle' ) or print "# " . last_error($imap) . "\n";
    my $nu = $other->append_string( $box, $m4 );
    is( $nu, 5, 'the second connection appends to the idling mailbox' );
    my @data;
    my $deadline = time + 10;
    while ( time < $deadline && !grep { /^\* 2 EXISTS/ } @data ) {
        my $d = $imap->idle_data(1);
        last unless defined $d;
        push @data, @$d;
    }
    ok( scalar( grep { /^\* 2 EXISTS\r?\n?$/ } @data ), 'idle_data reports * 2 EXISTS', join( '', @data ) );
    ok( $other->select($box) && scalar $other->set_flag( '\\Answered', 5 ), 'the second connection flags the new message' );
    @data     = ();
    $deadline = time + 10;
    while ( time < $deadline && !grep { /FETCH/ } @data ) {
        my $d = $imap->idle_data(1);
        last unless defined $d;
        push @data, @$d;
    }
    ok( scalar( grep { /^\* 2 FETCH \(.*\\Answered/ } @data ), 'idle_data reports the flag change', join( '', @data ) );
    my $done = $imap->done($tag);
    ok( $done && scalar( grep { /^\Q$tag\E OK/ } @$done ), 'done ends IDLE with OK', $done ? join( '', @$done ) : last_error($imap) );
    is_set( scalar $imap->search('ALL'), [ $uid{2}, 5 ], 'after IDLE the mailbox has messages 2 and 5' );
    ok( scalar $other->logout, 'the second connection logs out' );
}

# --- LOGOUT ---------------------------------------------------------------
ok( scalar $imap->logout, 'logout' );
ok( scalar $imap->IsUnconnected, 'unconnected after logout' );

print "1..$n\n";
exit( $failed ? 1 : 0 );
