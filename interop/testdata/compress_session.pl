#!/usr/bin/perl
# COMPRESS=DEFLATE (RFC 4978) through Perl's Mail::IMAPClient, which
# flushes what it sends with Z_PARTIAL_FLUSH: a block end that is not
# byte-aligned, the case a blocking inflater never returns.
#
# Usage: compress_session.pl HOST PORT USER PASSWORD
#
# Prints one TAP line per check and a final plan "1..N"; exits 1 if any
# check failed. Run by interop/compress_test.go.

use strict;
use warnings;

use Mail::IMAPClient;

@ARGV == 4 or die "usage: $0 HOST PORT USER PASSWORD\n";
my ( $host, $port, $user, $password ) = @ARGV;

$| = 1;
my $n      = 0;
my $failed = 0;

sub ok {
    my ( $cond, $what ) = @_;
    $n++;
    if ($cond) { print "ok $n - $what\n"; return 1 }
    $failed++;
    print "not ok $n - $what\n";
    return 0;
}

# The protocol log (after decompression) is kept and printed if the
# script fails, so that a failure says what was exchanged.
my $trace = '';
open( my $trace_fh, '>', \$trace ) or die "trace: $!\n";
$SIG{__DIE__} = sub { print "# protocol:\n", map { "# " . substr( $_, 0, 200 ) . "\n" } split /\n/, $trace; };

my $imap = Mail::IMAPClient->new(
    Server   => $host,
    Port     => $port,
    User     => $user,
    Password => $password,
    Compress => 1,
    Uid      => 1,
    Timeout  => 20,
    Debug    => 1,
    Debug_fh => $trace_fh,
    # append_string hands strings over 1 MiB (the default) to
    # append_file, which writes the literal with _send_bytes and so
    # skips the compressor (Mail::IMAPClient 3.43): raise the bound so
    # that the multi-megabyte APPEND is compressed.
    Maxappendstringlength => 16 * 1024 * 1024,
) or die "connect/login: $@\n";

ok( $imap->has_capability('COMPRESS=DEFLATE') || $imap->has_capability('COMPRESS'),
    'COMPRESS=DEFLATE advertised' );
ok( $imap->Compress, 'compression on' );
ok( $imap->noop, 'NOOP compressed' );

# A multi-megabyte message, with text and base64-like lines.
my $msg = "From: perl\@example.org\r\nTo: b\@example.org\r\nSubject: big\r\n\r\n";
my @alpha = ( 'A' .. 'Z', 'a' .. 'z', 0 .. 9, '+', '/' );
srand(7);
while ( length($msg) < 3_000_000 ) {
    if ( rand() < 0.5 ) {
        $msg .= "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    }
    else {
        $msg .= join( '', map { $alpha[ int( rand(64) ) ] } 1 .. 76 ) . "\r\n";
    }
}
my $uid = $imap->append_string( 'INBOX', $msg );
ok( defined $uid, 'APPEND of ' . length($msg) . ' bytes' ) or print "# " . $imap->LastError . "\n";
ok( $imap->select('INBOX'), 'SELECT' );
my $got = $imap->message_string($uid);
ok( defined $got && $got eq $msg, 'FETCH returns the message byte for byte' )
  or print "# got " . ( defined $got ? length($got) : 'undef' ) . " bytes\n";

# IDLE: a second connection appends while this one waits without
# sending anything.
my $tag = $imap->idle or die "IDLE: " . $imap->LastError . "\n";
my $other = Mail::IMAPClient->new(
    Server   => $host,
    Port     => $port,
    User     => $user,
    Password => $password,
) or die "second connection: $@\n";
$other->append_string( 'INBOX', "Subject: update\r\n\r\nhello\r\n" ) or die "append: " . $other->LastError . "\n";
my $exists = 0;
for ( 1 .. 20 ) {
    my $data = $imap->idle_data(1) or next;
    $exists = 1 if grep { /^\* \d+ EXISTS/ } @$data;
    last if $exists;
}
ok( $exists, 'IDLE got EXISTS while the client sent nothing' );
ok( defined $imap->done($tag), 'DONE' );
ok( $imap->noop, 'NOOP after IDLE' );
$other->logout;
ok( $imap->logout, 'LOGOUT' );

print "1..$n\n";
print "# protocol:\n", map { "# " . substr( $_, 0, 200 ) . "\n" } split /\n/, $trace if $failed;
exit( $failed ? 1 : 0 );
