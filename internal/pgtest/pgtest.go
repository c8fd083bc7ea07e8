// Package pgtest runs a throwaway PostgreSQL cluster for the tests of one
// test process and hands each test a fresh database in it.
//
// A package whose tests need PostgreSQL calls [Main] from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and each test asks for a database with [DB], which returns a connection
// string (DSN) and drops the database when the test ends. The cluster is
// started by the first [DB] of the process (about 2–3 s: initdb and
// startup), shared by every later test, and stopped and deleted by [Main]
// after the tests. A run that needs no database starts nothing.
//
// The cluster lives in a new directory $TMPDIR/pgtest-*, listens on a free
// TCP port of 127.0.0.1 only (and on a Unix socket inside that
// directory), trusts every local connection, and runs with fsync=off,
// full_page_writes=off and synchronous_commit=off: a crash loses it, which
// is fine for a test cluster and makes commits cheap. initdb refuses to
// run as root, so when the tests run as root the cluster's files belong to
// the system user "postgres" and initdb and postgres run under its uid
// (as `runuser -u postgres` would do); as another user they run as that
// user. The server gets SIGQUIT when the test process dies, and a later
// run deletes the directories that killed test processes left behind,
// once they are an hour old.
//
// The binaries are those of the newest /usr/lib/postgresql/N/bin (Debian's
// layout), else initdb and postgres from PATH; PGTEST_BIN names another
// directory. When PostgreSQL is not installed [DB] skips the test, or
// fails it when PGTEST_REQUIRE is set (CI sets it).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by the package.
const (
	// EnvRequire, when non-empty, turns the skip for a missing
	// PostgreSQL into a failure.
	EnvRequire = "PGTEST_REQUIRE"
	// EnvBin names the directory holding initdb and postgres.
	EnvBin = "PGTEST_BIN"
)

// superuser is the cluster's superuser role (initdb -U).
const superuser = "postgres"

// Cluster is a running test cluster.
type Cluster struct {
	dir  string // the instance directory (data/ and the socket)
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	log  string        // the server's log file
	next atomic.Int64  // numbers the databases handed out
}

// process is the one cluster of this test process. It is package state
// on purpose: the point is one cluster shared by every test of the
// process, started on first use and stopped by Main.
var process struct {
	once    sync.Once
	mu      sync.Mutex
	cluster *Cluster
	err     error
	missing string // why PostgreSQL is unavailable, when it is
}

// Main runs the tests and then stops the cluster if one was started. Its
// result is the exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	process.mu.Lock()
	c := process.cluster
	process.mu.Unlock()
	if c != nil {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the process's cluster, starting it on first use. It
// skips the test when PostgreSQL is not installed (fails it when
// PGTEST_REQUIRE is set) and fails it when the cluster cannot start.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	process.once.Do(func() {
		bin, why := FindBin()
		if bin == "" {
			process.missing = why
			return
		}
		c, err := Start(bin)
		process.mu.Lock()
		process.cluster, process.err = c, err
		process.mu.Unlock()
	})
	if process.missing != "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("PostgreSQL is not available: %s (failing: %s is set)", process.missing, EnvRequire)
		}
		t.Skipf("PostgreSQL is not available: %s (install Debian's postgresql; set %s=1 to fail instead)",
			process.missing, EnvRequire)
	}
	if process.err != nil {
		t.Fatalf("pgtest: %v", process.err)
	}
	return process.cluster
}

// DB creates a fresh, empty database in the process's cluster and returns
// its DSN; the database is dropped when the test ends. See [Shared] for
// the skips.
func DB(t testing.TB) string {
	t.Helper()
	c := Shared(t)
	dsn, drop, err := c.CreateDB(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// FindBin returns the directory holding initdb and postgres, or "" and
// the reason when there is none.
func FindBin() (dir, why string) {
	ok := func(d string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			st, err := os.Stat(filepath.Join(d, b))
			if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(EnvBin); d != "" {
		if ok(d) {
			return d, ""
		}
		return "", fmt.Sprintf("%s=%s holds no initdb and postgres", EnvBin, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, ""
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil && ok(filepath.Dir(p)) {
		return filepath.Dir(p), ""
	}
	return "", "no initdb and postgres in /usr/lib/postgresql/*/bin or PATH"
}

// versionOf extracts N from /usr/lib/postgresql/N/bin.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start creates and starts a new cluster with the binaries in bin.
func Start(bin string) (*Cluster, error) {
	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and there is no user postgres to run the cluster: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	removeStale()
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", superuser,
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = env(dir)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A free port can be taken between the probe and the server's bind;
	// then the server exits at once and another port is tried.
	var lastErr error
	for range 5 {
		c, err := start(bin, dir, cred)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// staleAge is how old the directory of a cluster whose server is gone
// must be before removeStale deletes it: a younger one may belong to a
// test process that is still running initdb.
const staleAge = time.Hour

// removeStale deletes the directories of clusters left behind by test
// processes that were killed before Main could stop them (their servers
// died with them: Pdeathsig): older than staleAge, with no live server.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < staleAge {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 &&
				syscall.Kill(pid, 0) == nil {
				continue // a server still runs there
			}
		}
		os.RemoveAll(d)
	}
}

func env(dir string) []string {
	return []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LC_ALL=C", "TZ=UTC"}
}

func start(bin, dir string, cred *syscall.Credential) (*Cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, port: port, done: make(chan struct{}), log: filepath.Join(dir, "server.log")}
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port), "-k", dir,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	c.cmd.Dir = dir
	c.cmd.Env = env(dir)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// The server dies with the test process even when that is killed
	// before Main can stop it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return c, nil
		}
		select {
		case <-c.done:
			out, _ := os.ReadFile(c.log)
			return nil, fmt.Errorf("postgres exited at startup: %s", strings.TrimSpace(string(out)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			<-c.done
			return nil, fmt.Errorf("postgres did not accept connections within 60 s: %v", err)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN returns the connection string of database db as the superuser.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, db)
}

// Port is the cluster's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// PID is the process id of the cluster's server (postmaster): its
// descendants are the backends serving the connections.
func (c *Cluster) PID() int { return c.cmd.Process.Pid }

// CreateDB creates a new empty database and returns its DSN and a
// function that drops it (closing whatever connections are still open to
// it).
func (c *Cluster) CreateDB(ctx context.Context) (dsn string, drop func() error, err error) {
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), c.next.Add(1))
	if err := c.admin(ctx, `CREATE DATABASE `+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop = func() error {
		if err := c.admin(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return c.DSN(name), drop, nil
}

func (c *Cluster) admin(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown: open sessions are
// disconnected) and deletes the cluster's directory.
func (c *Cluster) Stop() error {
	var err error
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		err = errors.New("postgres did not stop within 30 s; killed")
	}
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}
