// Package dovecottest starts a private Dovecot IMAP server for tests.
//
// Each call to [Start] writes a self-contained dovecot.conf into a fresh
// directory under /tmp (or $TMPDIR) and runs its own `dovecot -F` on a free
// 127.0.0.1 port, so tests may run instances concurrently. The server
// speaks plain IMAP (ssl = no, no STARTTLS) with cleartext LOGIN and
// AUTHENTICATE PLAIN/LOGIN allowed, logs to Dir/dovecot.log, and stores mail
// as Maildir++ under Dir/home/USER (hierarchy separator "."). Startup takes
// well under 100 ms, Stop a few ms.
//
// Dovecot comes from Debian's dovecot-imapd package (2.3.x on Debian 12).
// When it is missing, Start skips the test; set DOVECOTTEST_REQUIRE=1 to
// make that a failure instead (CI), and DOVECOTTEST_DOVECOT to use another
// binary.
//
// Privileges: Dovecot refuses to access mail as root and to run its login
// processes as root, so when the test runs as root the whole server runs as
// the user "nobody" (the instance files are owned by nobody). As a normal
// user it runs as that user, with chroots disabled. Either way userdb
// entries carry no uid, so no privilege change happens.
//
// Passwords are stored in plain text by default; [Options.PasswordScheme]
// chooses bcrypt (Dovecot's BLF-CRYPT) instead, so that login costs can
// be compared with a server that hashes with bcrypt, and
// [Options.AuthCacheSize] turns on Dovecot's authentication cache.
// [Options.Users] creates more accounts before the server starts.
//
// Settings that differ from Dovecot's defaults, for speed and convenience:
// auth_failure_delay = 0 (a failed login still takes ~0.5 s),
// login_trusted_networks = 127.0.0.0/8 (no auth penalty for repeated
// failures), mail_max_userip_connections = 100 (default 10), mail_fsync =
// never. [Options.ExtraConfig] can override any of them.
package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Default credentials of the user that every instance has.
const (
	DefaultUser     = "test"
	DefaultPassword = "secret"
)

// SkipMessage is the reason given to t.Skip when Dovecot is missing.
const SkipMessage = "dovecot not installed: apt-get install dovecot-imapd"

const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	portAttempts = 5
)

// Password schemes of [Options.PasswordScheme].
const (
	SchemePlain    = "PLAIN"     // the password itself
	SchemeBlfCrypt = "BLF-CRYPT" // bcrypt ($2a$), at Options.BcryptCost
)

// Options tune an instance. The zero value is what [Start] uses.
type Options struct {
	// ExtraConfig is appended verbatim to the generated dovecot.conf, so
	// it overrides earlier settings, e.g. "mail_max_userip_connections = 2"
	// or "imap_idle_notify_interval = 10 secs".
	ExtraConfig string
	// PasswordScheme is how the passwd file stores every account's
	// password, including those [Env.AddUser] adds: SchemePlain (the
	// default) or SchemeBlfCrypt.
	PasswordScheme string
	// BcryptCost is the cost of BLF-CRYPT hashes; 0 means bcrypt's
	// default, 10.
	BcryptCost int
	// AuthCacheSize is Dovecot's auth_cache_size, e.g. "10M"; empty
	// keeps Dovecot's default, 0 (no cache).
	AuthCacheSize string
	// Users are accounts to create besides the default one.
	Users []User
}

// User is an account of [Options.Users].
type User struct {
	Name, Password string
}

// NumberedUsers returns n accounts named fmt.Sprintf(template, i) for i
// from 1 to n, all with password.
func NumberedUsers(template string, n int, password string) []User {
	users := make([]User, n)
	for i := range users {
		users[i] = User{Name: fmt.Sprintf(template, i+1), Password: password}
	}
	return users
}

// Env is one running Dovecot instance.
type Env struct {
	// Addr is host:port of the plain IMAP listener (127.0.0.1:N).
	Addr string
	// User and Password log in to the default account.
	User, Password string
	// Dir is the instance directory (configuration, log, mail).
	Dir string
	// ConfPath is the dovecot.conf used; LogPath is Dovecot's log file.
	ConfPath, LogPath string
	// Version is the output of `dovecot --version`, e.g.
	// "2.3.19.1 (9b53102964)".
	Version string

	binary string
	port   int
	scheme string              // password scheme of the passwd file
	cost   int                 // bcrypt cost of BLF-CRYPT
	hashes map[string]string   // BLF-CRYPT hash by password, to hash each once
	runAs  *syscall.Credential // nil: run as the current user
	uid    int                 // uid/gid owning the instance files
	gid    int
	token  string // unique greeting text, to recognise our own server

	t    testing.TB // for diagnostics from Stop
	mu   sync.Mutex // guards proc and the passwd file
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait's result, valid after done
}

// Environment variables read by [Start].
const (
	// EnvBinary names the dovecot binary to use instead of searching
	// PATH, /usr/sbin and /usr/local/sbin.
	EnvBinary = "DOVECOTTEST_DOVECOT"
	// EnvRequire, when non-empty, turns the skips for a missing or
	// unsupported Dovecot into failures (set it in CI).
	EnvRequire = "DOVECOTTEST_REQUIRE"
)

// FindDovecot returns the path of the dovecot binary, or "" when it is not
// installed.
func FindDovecot() string {
	if p := os.Getenv(EnvBinary); p != "" {
		if isExecutable(p) {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// skip skips the test, or fails it when EnvRequire is set.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequire) != "" {
		t.Fatalf(format+" (failing: "+EnvRequire+" is set)", args...)
	}
	t.Skipf(format, args...)
}

// Start runs a new Dovecot instance with the default options. See
// [StartWith].
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith runs a new Dovecot instance, waits until it sends its
// greeting, and registers a cleanup that stops it. It skips the test when
// Dovecot is not installed.
func StartWith(t testing.TB, opts Options) *Env {
	t.Helper()
	bin := FindDovecot()
	if bin == "" {
		skip(t, "%s", SkipMessage)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		skip(t, "%s --version failed (%v): %s", bin, err, SkipMessage)
	}
	// The configuration below is Dovecot 2.3's; 2.4 (Debian 13) changed
	// the syntax incompatibly.
	if v := string(out); !strings.HasPrefix(v, "2.3.") {
		skip(t, "dovecottest supports Dovecot 2.3 (Debian 12), found %s", strings.TrimSpace(v))
	}

	e := &Env{
		User:     DefaultUser,
		Password: DefaultPassword,
		Version:  strings.TrimSpace(string(out)),
		binary:   bin,
		token:    randomToken(),
		t:        t,
		scheme:   opts.PasswordScheme,
		cost:     opts.BcryptCost,
		hashes:   map[string]string{},
	}
	switch e.scheme {
	case "":
		e.scheme = SchemePlain
	case SchemePlain, SchemeBlfCrypt:
	default:
		t.Fatalf("dovecottest: unknown password scheme %q", e.scheme)
	}
	if e.cost == 0 {
		e.cost = bcrypt.DefaultCost
	}
	users := append([]User{{e.User, e.Password}}, opts.Users...)
	var passwd strings.Builder
	seen := map[string]bool{}
	for _, u := range users {
		if err := checkAccount(u.Name, u.Password); err != nil || seen[u.Name] {
			t.Fatalf("dovecottest: account %q: unusable or repeated (%v)", u.Name, err)
		}
		seen[u.Name] = true
	}

	userName, groupName := e.identity(t)

	// Our own short directory rather than t.TempDir(): Dovecot's unix
	// sockets live under base_dir and their paths are limited to 107
	// bytes, while t.TempDir() embeds the (possibly long) test name. It
	// must also be reachable by "nobody" when we run as root, and
	// t.TempDir()'s parent is mode 0700.
	dir, err := os.MkdirTemp(shortTempRoot(e.runAs != nil), "dovecot-")
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	t.Cleanup(func() {
		// Runs after the stop cleanup registered below (LIFO).
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("dovecottest: removing %s: %v", dir, err)
		}
	})
	e.Dir = dir
	e.ConfPath = filepath.Join(dir, "dovecot.conf")
	e.LogPath = filepath.Join(dir, "dovecot.log")
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
	}
	for _, u := range users {
		line, err := e.passwdLine(u.Name, u.Password)
		if err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		passwd.WriteString(line)
	}
	if err := os.WriteFile(e.passwdPath(), []byte(passwd.String()), 0o644); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	if e.runAs != nil {
		if err := chownTree(dir, e.uid, e.gid); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
	}

	t.Cleanup(e.Stop)

	var lastErr error
	for attempt := 0; attempt < portAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("dovecottest: picking a port: %v", err)
		}
		e.port = port
		e.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := e.config(userName, groupName, opts)
		if err := os.WriteFile(e.ConfPath, []byte(conf), 0o644); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		if e.runAs != nil {
			_ = os.Chown(e.ConfPath, e.uid, e.gid)
		}
		err = e.start()
		if err == nil {
			return e
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("dovecottest: starting dovecot: %v\n%s", lastErr, e.diagnostics())
	return nil
}

var errPortInUse = errors.New("port already in use")

// identity decides which user runs Dovecot and returns the names that the
// configuration needs. It skips the test when no usable identity exists.
func (e *Env) identity(t testing.TB) (userName, groupName string) {
	t.Helper()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			skip(t, "dovecottest: running as root needs the user \"nobody\" to run dovecot as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			skip(t, "dovecottest: no name for nobody's group %s: %v", u.Gid, err)
		}
		e.uid, e.gid = uid, gid
		e.runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		return u.Username, g.Name
	}
	e.uid, e.gid = os.Getuid(), os.Getgid()
	u, err := user.LookupId(strconv.Itoa(e.uid))
	if err != nil {
		skip(t, "dovecottest: dovecot needs a user name for uid %d: %v", e.uid, err)
	}
	g, err := user.LookupGroupId(strconv.Itoa(e.gid))
	if err != nil {
		skip(t, "dovecottest: dovecot needs a group name for gid %d: %v", e.gid, err)
	}
	return u.Username, g.Name
}

func (e *Env) passwdPath() string        { return filepath.Join(e.Dir, "passwd") }
func (e *Env) homeOf(user string) string { return filepath.Join(e.Dir, "home", user) }

// passwdLine is a passwd-file entry without uid/gid: mail processes keep
// the server's own uid, which avoids Dovecot's UID checks. The password
// is stored in the instance's scheme; a bcrypt hash is computed once per
// distinct password (the salt is then shared, which a test does not mind).
func (e *Env) passwdLine(user, password string) (string, error) {
	stored := "{PLAIN}" + password
	if e.scheme == SchemeBlfCrypt {
		h, ok := e.hashes[password]
		if !ok {
			b, err := bcrypt.GenerateFromPassword([]byte(password), e.cost)
			if err != nil {
				return "", err
			}
			h = string(b)
			e.hashes[password] = h
		}
		stored = "{BLF-CRYPT}" + h
	}
	return fmt.Sprintf("%s:%s::::%s::\n", user, stored, e.homeOf(user)), nil
}

// checkAccount refuses what a passwd-file line cannot hold.
func checkAccount(name, password string) error {
	if name == "" || strings.ContainsAny(name, ":\n\r/ ") || strings.ContainsAny(password, ":\n\r") {
		return errors.New("empty, or holds a colon, slash, space or line break")
	}
	return nil
}

func (e *Env) config(userName, groupName string, opts Options) string {
	d := e.Dir
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by quickimap's internal/dovecottest.
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = dovecottest-%[2]d
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
login_trusted_networks = 127.0.0.0/8
log_path = %[1]s/dovecot.log
login_greeting = Dovecot ready %[3]s.
default_internal_user = %[4]s
default_internal_group = %[5]s
default_login_user = %[4]s
mail_location = maildir:~/Maildir
mail_plugins =
mail_fsync = never
mail_max_userip_connections = 100
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
service imap-urlauth-login {
  chroot =
}
service anvil {
  chroot =
}
service ipc {
  chroot =
}
service old-stats {
  chroot =
}
service aggregator {
  chroot =
}
service director {
  chroot =
}
`, d, e.port, e.token, userName, groupName)
	if opts.AuthCacheSize != "" {
		fmt.Fprintf(&b, "auth_cache_size = %s\n", opts.AuthCacheSize)
	}
	if opts.ExtraConfig != "" {
		b.WriteString("\n# Options.ExtraConfig\n")
		b.WriteString(opts.ExtraConfig)
		b.WriteString("\n")
	}
	return b.String()
}

// start launches dovecot with the current configuration and waits for its
// greeting.
func (e *Env) start() error {
	stderr, err := os.OpenFile(filepath.Join(e.Dir, "dovecot.stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	startedAt := logSize(e.LogPath)

	cmd := exec.Command(e.binary, "-F", "-c", e.ConfPath)
	cmd.Dir = e.Dir
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = sysProcAttr(e.runAs)
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.mu.Lock()
	e.proc = p
	e.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	delay := 5 * time.Millisecond
	var probeErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			e.mu.Lock()
			e.proc = nil
			e.mu.Unlock()
			logged := readFrom(e.LogPath, startedAt)
			se, _ := os.ReadFile(stderr.Name())
			if strings.Contains(logged, "Address already in use") || strings.Contains(string(se), "Address already in use") {
				return fmt.Errorf("%w: %d", errPortInUse, e.port)
			}
			return fmt.Errorf("dovecot exited during startup: %v", p.err)
		default:
		}
		probeErr = e.probe()
		if probeErr == nil {
			return nil
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
	e.Stop()
	return fmt.Errorf("no greeting from %s within %v: %v", e.Addr, startTimeout, probeErr)
}

// probe connects and checks that the greeting is our instance's.
func (e *Env) probe() error {
	c, err := net.DialTimeout("tcp", e.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading greeting: %v", err)
	}
	if !strings.HasPrefix(line, "* OK") || !strings.Contains(line, e.token) {
		return fmt.Errorf("%w: unexpected greeting %q (another server on the port?)", errPortInUse, line)
	}
	_, _ = c.Write([]byte("z LOGOUT\r\n"))
	return nil
}

// Stop terminates the server and waits for it. Dovecot's master shuts its
// processes down on SIGTERM: open connections get "* BYE Server shutting
// down." and are closed. Stop is idempotent; [Start] registers it as a
// cleanup.
func (e *Env) Stop() {
	e.mu.Lock()
	p := e.proc
	e.proc = nil
	e.mu.Unlock()
	if p == nil {
		return
	}
	pid := p.cmd.Process.Pid
	// The master first, so that it is shutting down (and so restarts
	// nothing) when its children die; then every process of the group, so
	// that each session process says BYE at once rather than leaving the
	// master to wait for it.
	_ = syscall.Kill(pid, syscall.SIGTERM)
	groupTerm := time.After(20 * time.Millisecond)
	deadline := time.After(stopTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-p.done:
			break wait
		case <-groupTerm:
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			groupTerm = nil
		case <-deadline:
			e.t.Logf("dovecottest: dovecot did not stop within %v; killing it. Processes: %s\n%s",
				stopTimeout, groupProcs(pid), e.LogTail(15))
			break wait
		case <-tick.C:
			// Dovecot's master sleeps a whole second in its shutdown
			// if a child has not been reaped yet. Once every child has
			// exited, which in shutdown it does not restart, there is
			// nothing left for it to do: kill it.
			if groupTerm == nil && !childrenAlive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Whatever is left of the process group (a hung master, children that
	// outlived it) is killed.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
	// A killed master leaves its pid file, which a restart would check.
	_ = os.Remove(filepath.Join(e.Dir, "run", "master.pid"))
}

// Restart stops the server and starts it again on the same port with the
// same configuration and mail, e.g. to test that a client reconnects.
func (e *Env) Restart(t testing.TB) {
	t.Helper()
	e.Stop()
	var err error
	// The port was ours until a moment ago; dovecot binds with
	// SO_REUSEADDR, so only a thief could take it. Retry briefly.
	for i := 0; i < 20; i++ {
		if err = e.start(); err == nil || !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dovecottest: restarting dovecot: %v\n%s", err, e.diagnostics())
	}
}

// PID returns the process id of Dovecot's master process, whose
// descendants are all its other processes; 0 when it is not running.
func (e *Env) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return 0
	}
	return e.proc.cmd.Process.Pid
}

// Running reports whether the server process is running.
func (e *Env) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return false
	}
	select {
	case <-e.proc.done:
		return false
	default:
		return true
	}
}

// AddUser adds an account (Maildir under Dir/home/NAME). Dovecot re-reads
// the passwd file on its next lookup, so the account is usable at once.
func (e *Env) AddUser(t testing.TB, name, password string) {
	t.Helper()
	if err := checkAccount(name, password); err != nil {
		t.Fatalf("dovecottest: AddUser: unusable name or password %q: %v", name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old, err := os.ReadFile(e.passwdPath())
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	for _, l := range strings.Split(string(old), "\n") {
		if strings.HasPrefix(l, name+":") {
			t.Fatalf("dovecottest: AddUser: %q exists", name)
		}
	}
	line, err := e.passwdLine(name, password)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	data := append(old, line...)
	// Write and rename, so that dovecot never reads half a file.
	tmp := e.passwdPath() + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	if err := os.Rename(tmp, e.passwdPath()); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
}

// Doveadm runs `doveadm -c CONF ARGS...` against this instance and returns
// its combined output; e.g. Doveadm(t, "kick", "test") drops the user's
// connections (each gets "* BYE Server shutting down.").
func (e *Env) Doveadm(t testing.TB, args ...string) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(e.binary), "doveadm")
	if _, err := os.Stat(bin); err != nil {
		if p, err2 := exec.LookPath("doveadm"); err2 == nil {
			bin = p
		}
	}
	cmd := exec.Command(bin, append([]string{"-c", e.ConfPath}, args...)...)
	if e.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.runAs}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dovecottest: doveadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Kick disconnects every IMAP session of user (doveadm kick).
func (e *Env) Kick(t testing.TB, user string) {
	t.Helper()
	e.Doveadm(t, "kick", user)
}

// Log returns Dovecot's log so far.
func (e *Env) Log() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}

// LogTail returns the last n lines of Dovecot's log.
func (e *Env) LogTail(n int) string {
	return tailLines(e.Log(), n)
}

func (e *Env) diagnostics() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dovecot %s, dir %s, addr %s\n", e.Version, e.Dir, e.Addr)
	if se, _ := os.ReadFile(filepath.Join(e.Dir, "dovecot.stderr")); len(bytes.TrimSpace(se)) > 0 {
		fmt.Fprintf(&b, "--- stderr (tail)\n%s\n", tailLines(string(se), 20))
	}
	fmt.Fprintf(&b, "--- %s (tail)\n%s", e.LogPath, e.LogTail(30))
	return b.String()
}

// Dial connects to the server and reads the greeting; the connection is
// closed at the end of the test.
func (e *Env) Dial(t testing.TB) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", e.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dovecottest: dial %s: %v", e.Addr, err)
	}
	c := &Conn{t: t, nc: nc, r: bufio.NewReader(nc), env: e}
	t.Cleanup(func() { _ = c.Close() })
	_ = nc.SetReadDeadline(time.Now().Add(cmdTimeout))
	g, err := c.ReadLine()
	if err != nil {
		t.Fatalf("dovecottest: greeting: %v\n%s", err, e.LogTail(20))
	}
	c.Greeting = g
	return c
}

// Login dials and logs in as the default user.
func (e *Env) Login(t testing.TB) *Conn {
	t.Helper()
	return e.LoginAs(t, e.User, e.Password)
}

// LoginAs dials and logs in with LOGIN.
func (e *Env) LoginAs(t testing.TB, user, password string) *Conn {
	t.Helper()
	c := e.Dial(t)
	c.MustOK("LOGIN %s %s", Quote(user), Quote(password))
	return c
}

// Clear empties the default user's account: every mailbox but INBOX is
// deleted and INBOX is expunged. UIDVALIDITY of INBOX is kept and UIDs are
// not reused.
func (e *Env) Clear(t testing.TB) {
	t.Helper()
	e.ClearUser(t, e.User, e.Password)
}

// ClearUser is [Env.Clear] for another account.
func (e *Env) ClearUser(t testing.TB, user, password string) {
	t.Helper()
	c := e.LoginAs(t, user, password)
	defer c.Close()
	untagged := c.MustOK(`LIST "" "*"`)
	var names []string
	for _, l := range untagged {
		name, ok := listName(l)
		if ok && !strings.EqualFold(name, "INBOX") && !strings.Contains(strings.ToLower(l), `\nonexistent`) {
			names = append(names, name)
		}
	}
	// Children before parents. A parent that exists only as a path
	// (\Noselect) may vanish with its last child.
	for i := len(names) - 1; i >= 0; i-- {
		resp, err := c.Do("DELETE %s", Quote(names[i]))
		if err != nil || (resp.Status != "OK" && !strings.Contains(resp.Text, "[NONEXISTENT]")) {
			t.Fatalf("dovecottest: DELETE %q: %v %+v\n%s", names[i], err, resp, e.LogTail(10))
		}
	}
	c.MustOK("SELECT INBOX")
	if n := c.MustOK("SEARCH ALL"); len(n) > 0 && strings.TrimSpace(strings.TrimPrefix(n[0], "* SEARCH")) != "" {
		c.MustOK(`STORE 1:* +FLAGS.SILENT (\Deleted)`)
		c.MustOK("EXPUNGE")
	}
	c.MustOK("LOGOUT")
}

// listName extracts the mailbox name from a "* LIST (...) "/" name" line.
func listName(line string) (string, bool) {
	if !strings.HasPrefix(line, "* LIST ") {
		return "", false
	}
	i := strings.Index(line, ")")
	if i < 0 {
		return "", false
	}
	rest := strings.TrimSpace(line[i+1:])
	// delimiter: NIL or "x"
	if strings.HasPrefix(rest, "NIL ") {
		rest = rest[4:]
	} else if strings.HasPrefix(rest, `"`) {
		j := 1
		if j < len(rest) && rest[j] == '\\' {
			j++
		}
		rest = strings.TrimSpace(rest[j+2:])
	}
	if strings.HasPrefix(rest, `"`) {
		s, err := strconv.Unquote(rest)
		if err != nil {
			return "", false
		}
		return s, true
	}
	return rest, true
}

// Append stores msg (CRLF line endings are added if missing) in mailbox
// of the default user from a separate connection and returns its UID.
func (e *Env) Append(t testing.TB, mailbox, msg string) uint32 {
	t.Helper()
	c := e.Login(t)
	defer c.Close()
	uid := c.Append(mailbox, msg)
	c.MustOK("LOGOUT")
	return uid
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func shortTempRoot(asRoot bool) string {
	if asRoot {
		// nobody must reach the directory; root's TMPDIR may not let it.
		return "/tmp"
	}
	d := os.TempDir()
	// base_dir sockets add up to ~40 bytes to "<root>/dovecot-NNNNNNNNN".
	if len(d) > 50 {
		return "/tmp"
	}
	return d
}

func randomToken() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readFrom(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
