package keyport_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
)

// A real SMTP server for the mail tests: Mailpit (https://mailpit.axllent.org),
// started per test on free ports and read back through its HTTP API, as
// tests/src/mailpit.rs does for the Rust tests.

const (
	// mailpitInstall is how scripts/test.sh installs Mailpit.
	mailpitInstall = "GOBIN=~/.cache/keyport/bin go install github.com/axllent/mailpit@v1.33.1"
	// publicBaseURL is where the links in test mails point.
	publicBaseURL = "http://app.example.test"
	// deliveryTimeout is how long waitFor waits for a mail.
	deliveryTimeout = 20 * time.Second
)

// mailpit is a running Mailpit.
type mailpit struct {
	smtpPort int
	api      string // http://127.0.0.1:PORT
	http     *http.Client
}

// mail is a delivered message, as Mailpit's /api/v1/message/<id> shows it.
type mail struct {
	ID      string
	Subject string
	From    struct{ Address string }
	To      []struct{ Address string }
	Text    string
	HTML    string
}

// mailpitBinary is $KEYPORT_MAILPIT, else ~/.cache/keyport/bin/mailpit.
func mailpitBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KEYPORT_MAILPIT")
	if bin == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("no home directory to find Mailpit in (%v); install it with `%s` or set KEYPORT_MAILPIT", err, mailpitInstall)
		}
		bin = filepath.Join(home, ".cache", "keyport", "bin", "mailpit")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Mailpit is needed for the mail tests: %v; install it with `%s`, or set KEYPORT_MAILPIT to its binary", err, mailpitInstall)
	}
	return bin
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMailpit starts Mailpit on free ports (plain SMTP, any or no
// credentials, every message kept), waits until it answers, and stops it
// when the test ends.
func startMailpit(t *testing.T) *mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	m := &mailpit{smtpPort: freePort(t), http: &http.Client{Timeout: 10 * time.Second}}
	httpPort := freePort(t)
	m.api = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	cmd := exec.Command(bin,
		"--smtp", fmt.Sprintf("127.0.0.1:%d", m.smtpPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--max", "0", // keep every message (the default prunes past 500)
		"--smtp-auth-accept-any",
		"--smtp-auth-allow-insecure",
		"--smtp-disable-rdns",
		"--quiet")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Mailpit (%s): %v; install it with `%s`", bin, err, mailpitInstall)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("Mailpit exited before it was ready (%v):\n%s", cmd.ProcessState, stderr.String())
		default:
		}
		if m.ready() {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("Mailpit did not answer on %s/readyz and SMTP port %d within 10s:\n%s", m.api, m.smtpPort, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether both the SMTP port and the HTTP API answer.
func (m *mailpit) ready() bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.smtpPort), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	resp, err := m.http.Get(m.api + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// env is the environment that points a keyport at this Mailpit.
func (m *mailpit) env() []string {
	return []string{
		"KEYPORT_MAIL__SMTP_HOST=127.0.0.1",
		"KEYPORT_MAIL__SMTP_PORT=" + strconv.Itoa(m.smtpPort),
		"KEYPORT_MAIL__SECURITY=none",
		"KEYPORT_MAIL__FROM=Keyport <no-reply@example.test>",
		"KEYPORT_MAIL__PUBLIC_BASE_URL=" + publicBaseURL,
		// Fast retries and polls, as tests/src/mailpit.rs configures them.
		"KEYPORT_MAIL__RETRY_BASE_MS=1000",
		"KEYPORT_MAIL__POLL_INTERVAL_MS=100",
	}
}

// getJSON GETs path from the API and decodes the answer into v.
func (m *mailpit) getJSON(path string, v any) error {
	resp, err := m.http.Get(m.api + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// messagesTo returns every message delivered to the address to, newest
// first.
func (m *mailpit) messagesTo(t *testing.T, to string) []mail {
	t.Helper()
	var listing struct {
		Messages []struct {
			ID string
			To []struct{ Address string }
		}
	}
	if err := m.getJSON("/api/v1/search?query="+url.QueryEscape(`to:"`+to+`"`), &listing); err != nil {
		t.Fatalf("Mailpit search for %s: %v", to, err)
	}
	var out []mail
	for _, summary := range listing.Messages {
		// The search matches substrings; keep the messages to exactly this address.
		exact := false
		for _, rcpt := range summary.To {
			exact = exact || strings.EqualFold(rcpt.Address, to)
		}
		if !exact {
			continue
		}
		var msg mail
		if err := m.getJSON("/api/v1/message/"+summary.ID, &msg); err != nil {
			t.Fatalf("Mailpit message %s: %v", summary.ID, err)
		}
		out = append(out, msg)
	}
	return out
}

// waitFor waits until count messages were delivered to the address to and
// returns them, newest first; it fails the test after deliveryTimeout.
func (m *mailpit) waitFor(t *testing.T, to string, count int) []mail {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for {
		msgs := m.messagesTo(t, to)
		if len(msgs) >= count {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d mails to %s arrived within %v", len(msgs), count, to, deliveryTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noMoreMail checks, after a pause for the courier, that exactly count
// messages reached the address to.
func (m *mailpit) noMoreMail(t *testing.T, to string, count int) {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	if got := len(m.messagesTo(t, to)); got != count {
		t.Errorf("%d mails reached %s, want %d", got, to, count)
	}
}

var linkPattern = regexp.MustCompile(regexp.QuoteMeta(publicBaseURL) + `/[^\s"<>]+`)

// link returns the first link to publicBaseURL+path in the mail's text
// part.
func (msg mail) link(t *testing.T, path string) string {
	t.Helper()
	for _, l := range linkPattern.FindAllString(msg.Text, -1) {
		if strings.HasPrefix(l, publicBaseURL+path+"?") {
			return l
		}
	}
	t.Fatalf("no link to %s%s in the mail %q:\n%s", publicBaseURL, path, msg.Subject, msg.Text)
	return ""
}

// token returns the token of the mail's link to path, read with
// keyport.TokenFromLink as a web app's page would.
func (msg mail) token(t *testing.T, path string) string {
	t.Helper()
	link := msg.link(t, path)
	token, ok := keyport.TokenFromLink(link)
	if !ok || !strings.HasPrefix(token, "kpm_") {
		t.Fatalf("TokenFromLink(%q) = %q, %v; want a kpm_ token", link, token, ok)
	}
	return token
}

var sixDigits = regexp.MustCompile(`\b[0-9]{6}\b`)

// code returns the six-digit code in the mail's text part after the
// words before (such as "enter this code:"), and checks the HTML part has
// it too.
func (msg mail) code(t *testing.T, before string) string {
	t.Helper()
	_, rest, found := strings.Cut(msg.Text, before)
	code := sixDigits.FindString(rest)
	if !found || code == "" {
		t.Fatalf("no six-digit code after %q in the mail %q:\n%s", before, msg.Subject, msg.Text)
	}
	if !strings.Contains(msg.HTML, code) {
		t.Errorf("the mail's HTML part lacks the code %s", code)
	}
	return code
}
