package keyport_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run against a real keyport server, started once by TestMain.

const buildHint = "build it with `CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server` " +
	"and run the tests with KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport"

var (
	// serverAddr is the live server's address, set by TestMain.
	serverAddr string
	// liveSrv is the live server, set by TestMain (for [server.admin]).
	liveSrv *server
	// serverErr says why there is no live server; tests that need one fail with it.
	serverErr error
)

// startTestServer starts a keyport of its own for one test, with the extra
// environment env, and stops it when the test ends.
func startTestServer(t *testing.T, env ...string) string {
	t.Helper()
	return startOwnServer(t, env...).addr
}

// startOwnServer is [startTestServer] answering the server itself, for
// [server.admin] on its database.
func startOwnServer(t *testing.T, env ...string) *server {
	t.Helper()
	bin := os.Getenv("KEYPORT_BIN")
	if bin == "" {
		t.Fatal("KEYPORT_BIN is not set; " + buildHint)
	}
	srv, err := startServer(bin, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// liveServer returns the address of the keyport server started by TestMain,
// or fails the test with the reason it could not be started.
func liveServer(t *testing.T) string {
	t.Helper()
	if serverErr != nil {
		t.Fatalf("no live keyport server: %v", serverErr)
	}
	return serverAddr
}

func TestMain(m *testing.M) {
	var srv *server
	bin := os.Getenv("KEYPORT_BIN")
	if bin == "" {
		serverErr = errors.New("KEYPORT_BIN is not set; " + buildHint)
	} else {
		srv, serverErr = startServer(bin)
		if serverErr == nil {
			serverAddr, liveSrv = srv.addr, srv
		}
	}
	code := m.Run()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping keyport: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// server is a running keyport process.
type server struct {
	cmd     *exec.Cmd
	bin     string
	addr    string
	dataDir string
	env     []string // the environment it runs with
	stderr  *lockedBuffer
	done    chan struct{} // closed when stdout is drained
}

// admin runs `keyport --data-dir <s's> admin args...` with s's
// environment while it runs, as an operator does on its host, with stdin
// as its standard input (the password of --password-stdin on the first
// line), and returns its standard output; a non-zero exit is an error that
// holds its standard error.
func (s *server) admin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(s.bin, append([]string{"--data-dir", s.dataDir, "admin"}, args...)...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("keyport admin %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// passkeysEnv is the [passkeys] section of every test server: the relying
// party localhost, for pages on https://localhost. An env entry
// "KEYPORT_PASSKEYS__RP_ID=" turns passkeys off (the last entry wins).
var passkeysEnv = []string{
	"KEYPORT_PASSKEYS__RP_ID=localhost",
	`KEYPORT_PASSKEYS__ORIGINS=["https://localhost"]`,
}

// authorizationEnv is the [authorization] section of every test server:
// the catalogue posts:read and posts:write; user grants posts:read and
// admin everything.
var authorizationEnv = []string{
	`KEYPORT_AUTHORIZATION__PERMISSIONS=["posts:read","posts:write"]`,
	`KEYPORT_AUTHORIZATION__ROLES={user = ["posts:read"], admin = ["*"]}`,
}

// startServer runs `keyport serve` on a free port with a fresh data
// directory, cheap password hashing, passkeys ([passkeysEnv]), permissions
// ([authorizationEnv]) and the extra environment entries env
// ("KEY=value"), and waits until it logs its address.
func startServer(bin string, env ...string) (*server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("KEYPORT_BIN=%s: %w; %s", bin, err, buildHint)
	}
	dataDir, err := os.MkdirTemp("", "keyport-go-test-")
	if err != nil {
		return nil, err
	}
	return startServerAt(bin, "127.0.0.1:0", dataDir, env...)
}

// startServerAt is [startServer] listening on listen, with the data
// directory dataDir (which it removes if it fails to start): a restart of
// an earlier server on its address and database.
func startServerAt(bin, listen, dataDir string, env ...string) (*server, error) {
	cmd := exec.Command(bin, "serve",
		"--listen", listen,
		"--data-dir", dataDir,
		"--log-format", "json")
	cmd.Env = append(os.Environ(),
		"KEYPORT_HASHING__MEMORY_KIB=1024",
		"KEYPORT_HASHING__ITERATIONS=1",
	)
	cmd.Env = append(cmd.Env, passkeysEnv...)
	cmd.Env = append(cmd.Env, authorizationEnv...)
	cmd.Env = append(cmd.Env, env...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dataDir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &server{cmd: cmd, bin: bin, dataDir: dataDir, env: cmd.Env, stderr: stderr, done: make(chan struct{})}

	addrCh := make(chan string, 1)
	var seen lockedBuffer // stdout lines before the address, for error messages
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		found := false
		for sc.Scan() {
			line := sc.Bytes()
			if found {
				continue // keep draining so the server never blocks on a full pipe
			}
			seen.Write(append(append([]byte(nil), line...), '\n'))
			if addr, ok := servingAddress(line); ok {
				found = true
				addrCh <- addr
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()

	select {
	case s.addr = <-addrCh:
		return s, nil
	case <-s.done:
		_ = cmd.Wait()
		os.RemoveAll(dataDir)
		return nil, fmt.Errorf("keyport exited before serving (%v)\nstdout:\n%s\nstderr:\n%s",
			cmd.ProcessState, seen.String(), stderr.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dataDir)
		return nil, fmt.Errorf("keyport did not log \"keyport serving gRPC\" within 30s\nstdout:\n%s\nstderr:\n%s",
			seen.String(), stderr.String())
	}
}

// servingAddress recognises the JSON log line that announces the listening
// address: {"message":"keyport serving gRPC","address":"127.0.0.1:PORT",...}.
// It also accepts the fields nested under "fields", tracing-subscriber's
// non-flattened JSON layout.
func servingAddress(line []byte) (string, bool) {
	var rec struct {
		Message string `json:"message"`
		Address string `json:"address"`
		Fields  struct {
			Message string `json:"message"`
			Address string `json:"address"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return "", false
	}
	if rec.Message == "keyport serving gRPC" && rec.Address != "" {
		return rec.Address, true
	}
	if rec.Fields.Message == "keyport serving gRPC" && rec.Fields.Address != "" {
		return rec.Fields.Address, true
	}
	return "", false
}

// stop asks the server to shut down (SIGTERM), kills it if it takes more
// than 10 seconds, and removes its data directory.
func (s *server) stop() error {
	defer os.RemoveAll(s.dataDir)
	return s.halt()
}

// halt is [server.stop] that keeps the data directory, for a restart.
func (s *server) halt() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() {
		<-s.done
		exited <- s.cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("keyport exited with %v after SIGTERM\nstderr:\n%s", err, s.stderr.String())
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-exited
		return fmt.Errorf("keyport did not stop within 10s of SIGTERM; killed")
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
