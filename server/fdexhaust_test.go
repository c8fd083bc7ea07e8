//go:build unix

package server_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// fdChildEnv makes TestAcceptOutOfFDs the server process.
const fdChildEnv = "QUICKIMAP_TEST_FD_CHILD"

// At the limit on open files, clients that cannot be served are told BYE
// and closed, rather than left in the listen queue with no greeting, and
// the accept loop does not spin. The server runs in a child process (this
// test, re-executed) whose limit is lowered to 64 descriptors, so that
// this one's sockets are not counted against it.
func TestAcceptOutOfFDs(t *testing.T) {
	if os.Getenv(fdChildEnv) == "1" {
		fdChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptOutOfFDs$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	out := bufio.NewReader(stdout)
	readValue := func(prefix string) string {
		t.Helper()
		for {
			l, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
				return v
			}
		}
	}
	addr := readValue("addr=")
	if strings.HasPrefix(addr, "skip:") {
		t.Skip(addr)
	}
	cpu := func() time.Duration {
		t.Helper()
		fmt.Fprintln(stdin, "cpu")
		n, err := strconv.ParseInt(readValue("cpu="), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(n)
	}

	// More connections than the child has descriptors for: every one
	// gets a greeting or a BYE at once.
	var greeted, refused int
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 150 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
		nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		l, err := bufio.NewReader(nc).ReadString('\n')
		switch {
		case strings.HasPrefix(l, "* OK"):
			greeted++
		case l == "* BYE Server out of resources, try again later\r\n":
			refused++
		default:
			t.Fatalf("connection %d: %q, %v; want a greeting or a BYE (after %d greeted, %d refused)", i, l, err, greeted, refused)
		}
	}
	t.Logf("with 64 descriptors: %d connections greeted, %d told BYE", greeted, refused)
	if greeted < 10 || refused < 50 {
		t.Errorf("%d greeted, %d refused: the limit was not reached as expected", greeted, refused)
	}
	// At the limit, with the clients above still connected, the accept
	// loop waits rather than spins: the child uses little CPU.
	c0 := cpu()
	for range 20 {
		if nc, err := net.Dial("tcp", addr); err == nil {
			conns = append(conns, nc)
		}
	}
	time.Sleep(time.Second) // the window measured
	used := cpu() - c0
	if used > 300*time.Millisecond {
		t.Errorf("the server used %v of CPU in 1 s at the limit on open files", used)
	}
	t.Logf("server CPU in 1 s at the limit with 20 more clients: %v", used)
}

// fdChild serves with the limit on open files lowered to 64 and answers
// "cpu" lines on standard input with its CPU time, until standard input
// closes.
func fdChild(t *testing.T) {
	env := imaptest.Start(t, nil)
	l := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		fmt.Printf("addr=skip: cannot lower the limit on open files: %v\n", err)
		return
	}
	fmt.Printf("addr=%s\n", env.Addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "cpu" {
			c, _ := processCPU()
			fmt.Printf("cpu=%d\n", int64(c))
		}
	}
}
