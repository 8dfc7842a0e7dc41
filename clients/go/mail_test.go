package keyport_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The account-lifecycle flows through the user's mailbox, against a keyport
// of their own that mails through a real SMTP server (Mailpit, see
// mailpit_test.go). Each test uses fresh addresses, so no address nears the
// per-recipient cap of 3 link mails at once.

const newPassword = "a fresh passphrase for today"

// The pages the links in mails point to (the defaults of [mail] *_path).
const (
	resetPath       = "/reset-password"
	verifyPath      = "/verify-email"
	changeEmailPath = "/change-email"
	signInPath      = "/sign-in/email"
)

// codeIntro comes before the six-digit code in every mail that has one.
const codeIntro = "enter this code"

// startMailServer starts Mailpit and a keyport that mails through it, with
// the extra environment env, and returns a client of that keyport.
func startMailServer(t *testing.T, env ...string) (*keyport.Client, *mailpit) {
	t.Helper()
	mp := startMailpit(t)
	addr := startTestServer(t, append(mp.env(), env...)...)
	c, err := keyport.Dial(addr, keyport.WithInsecure())
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, mp
}

// userOf returns the user that owns the session token, failing the test
// when the token does not validate.
func userOf(t *testing.T, c *keyport.Client, token string) *keyportv1.User {
	t.Helper()
	resp, err := c.Users.GetCurrentUser(keyport.WithToken(t.Context(), token), &keyportv1.GetCurrentUserRequest{})
	if err != nil {
		t.Fatalf("GetCurrentUser: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	return resp.GetUser()
}

// startEmailSignIn starts an email sign-in for email and returns the
// binding, checking the answer's shape.
func startEmailSignIn(t *testing.T, c *keyport.Client, email string) *keyportv1.StartEmailSignInResponse {
	t.Helper()
	start, err := c.Sessions.StartEmailSignIn(t.Context(), &keyportv1.StartEmailSignInRequest{Email: email})
	if err != nil {
		t.Fatalf("StartEmailSignIn(%s): %v (reason %q)", email, err, keyport.ErrorReason(err))
	}
	if len(start.GetBinding()) < 43 {
		t.Errorf("binding %q is shorter than 256 bits in base64", start.GetBinding())
	}
	if until := time.Until(start.GetExpiresAt().AsTime()); until <= 0 || until > 11*time.Minute {
		t.Errorf("expires_at %v is not within the next 10 minutes", start.GetExpiresAt().AsTime())
	}
	return start
}

func TestPasswordResetThroughTheMailbox(t *testing.T) {
	c, mp := startMailServer(t)
	ctx := t.Context()
	email, up := signUp(t, c)
	before := up.GetSession().GetToken()

	known, err := c.Users.RequestPasswordReset(ctx, &keyportv1.RequestPasswordResetRequest{Email: strings.ToUpper(email)})
	if err != nil {
		t.Fatalf("RequestPasswordReset: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	msg := mp.waitFor(t, email, 1)[0]
	if !strings.Contains(msg.Subject, "Reset") || msg.From.Address != "no-reply@example.test" {
		t.Errorf("reset mail from %q with subject %q", msg.From.Address, msg.Subject)
	}
	token := msg.token(t, resetPath)
	if link := msg.link(t, resetPath); !strings.Contains(html.UnescapeString(msg.HTML), `href="`+link+`"`) {
		t.Errorf("the HTML part does not link to %s:\n%s", link, msg.HTML)
	}

	// A refused password leaves the link usable.
	_, err = c.Users.ResetPassword(ctx, &keyportv1.ResetPasswordRequest{Token: token, NewPassword: "short"})
	wantError(t, "ResetPassword with a weak password", err, codes.InvalidArgument, keyport.ReasonWeakPassword)

	reset, err := c.Users.ResetPassword(ctx, &keyportv1.ResetPasswordRequest{Token: token, NewPassword: newPassword})
	if err != nil {
		t.Fatalf("ResetPassword: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if reset.GetRevokedSessions() != 1 {
		t.Errorf("ResetPassword ended %d sessions, want 1 (the sign-up's)", reset.GetRevokedSessions())
	}
	_, err = c.Sessions.GetSession(ctx, &keyportv1.GetSessionRequest{Token: before})
	wantError(t, "GetSession with the pre-reset session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	_, err = c.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: email, Password: password})
	wantError(t, "SignIn with the old password", err, codes.Unauthenticated, keyport.ReasonInvalidCredentials)
	signedIn, err := c.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: email, Password: newPassword})
	if err != nil {
		t.Fatalf("SignIn with the new password: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if !userOf(t, c, signedIn.GetSession().GetToken()).GetEmailVerified() {
		t.Errorf("email_verified is false after a reset: the link proved the mailbox")
	}

	// The owner hears of it; the link is spent.
	if notice := mp.waitFor(t, email, 2)[0]; !strings.Contains(notice.Subject, "password was changed") {
		t.Errorf("second mail's subject %q, want the password-changed notice", notice.Subject)
	}
	_, err = c.Users.ResetPassword(ctx, &keyportv1.ResetPasswordRequest{Token: token, NewPassword: "yet another passphrase"})
	wantError(t, "ResetPassword with a used token", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

	// An unknown address gets the same answer, and no mail.
	unknown := uniqueEmail()
	answer, err := c.Users.RequestPasswordReset(ctx, &keyportv1.RequestPasswordResetRequest{Email: unknown})
	if err != nil {
		t.Fatalf("RequestPasswordReset for an unknown address: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if !proto.Equal(answer, known) {
		t.Errorf("unknown address answered %v, a known one %v", answer, known)
	}
	mp.noMoreMail(t, unknown, 0)
	mp.noMoreMail(t, email, 2)
}

func TestParallelResetsWithOneToken(t *testing.T) {
	const callers = 8
	c, mp := startMailServer(t)
	email, _ := signUp(t, c)
	if _, err := c.Users.RequestPasswordReset(t.Context(), &keyportv1.RequestPasswordResetRequest{Email: email}); err != nil {
		t.Fatalf("RequestPasswordReset: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	token := mp.waitFor(t, email, 1)[0].token(t, resetPath)

	start := make(chan struct{})
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for n := range callers {
		wg.Go(func() {
			<-start
			_, errs[n] = c.Users.ResetPassword(t.Context(), &keyportv1.ResetPasswordRequest{
				Token: token, NewPassword: fmt.Sprintf("parallel passphrase %d", n),
			})
		})
	}
	close(start) // release them together
	wg.Wait()

	winner := -1
	for n, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = n
		case err == nil:
			t.Errorf("callers %d and %d both reset the password with one token", winner, n)
		default:
			wantError(t, fmt.Sprintf("caller %d", n), err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d parallel ResetPassword calls succeeded", callers)
	}
	_, err := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: email, Password: fmt.Sprintf("parallel passphrase %d", winner)})
	if err != nil {
		t.Errorf("SignIn with the winning caller's password: %v (reason %q)", err, keyport.ErrorReason(err))
	}
}

func TestEmailVerificationThroughTheMailbox(t *testing.T) {
	c, mp := startMailServer(t)

	t.Run("link", func(t *testing.T) {
		ctx := t.Context()
		email, up := signUp(t, c)
		session := up.GetSession().GetToken()
		if _, err := c.Users.RequestEmailVerification(keyport.WithToken(ctx, session), &keyportv1.RequestEmailVerificationRequest{}); err != nil {
			t.Fatalf("RequestEmailVerification: %v (reason %q)", err, keyport.ErrorReason(err))
		}
		msg := mp.waitFor(t, email, 1)[0]
		if !strings.Contains(msg.Subject, "Verify") {
			t.Errorf("verification mail's subject %q", msg.Subject)
		}
		token := msg.token(t, verifyPath)

		// A verification link is no reset link.
		_, err := c.Users.ResetPassword(ctx, &keyportv1.ResetPasswordRequest{Token: token, NewPassword: newPassword})
		wantError(t, "ResetPassword with a verification token", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

		// Public: the token proves the mailbox.
		verified, err := c.Users.VerifyEmail(ctx, &keyportv1.VerifyEmailRequest{Token: token})
		if err != nil {
			t.Fatalf("VerifyEmail(token): %v (reason %q)", err, keyport.ErrorReason(err))
		}
		if u := verified.GetUser(); !u.GetEmailVerified() || u.GetEmail() != email {
			t.Errorf("VerifyEmail returned %s verified=%v, want %s verified", u.GetEmail(), u.GetEmailVerified(), email)
		}
		if !userOf(t, c, session).GetEmailVerified() {
			t.Errorf("GetCurrentUser does not show the address verified")
		}
		_, err = c.Users.VerifyEmail(ctx, &keyportv1.VerifyEmailRequest{Token: token})
		wantError(t, "VerifyEmail with a used token", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

		// Verified already: the answer is the same, and no mail is sent.
		if _, err := c.Users.RequestEmailVerification(keyport.WithToken(ctx, session), &keyportv1.RequestEmailVerificationRequest{}); err != nil {
			t.Errorf("RequestEmailVerification when verified: %v", err)
		}
		mp.noMoreMail(t, email, 1)

		// Without a session the address is needed; a bad session is refused.
		_, err = c.Users.RequestEmailVerification(ctx, &keyportv1.RequestEmailVerificationRequest{})
		wantError(t, "RequestEmailVerification without session or email", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		_, err = c.Users.RequestEmailVerification(keyport.WithToken(ctx, "kp_forged.token"), &keyportv1.RequestEmailVerificationRequest{Email: email})
		wantError(t, "RequestEmailVerification with a forged session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	})

	t.Run("code", func(t *testing.T) {
		ctx := t.Context()
		email, up := signUp(t, c)
		session := up.GetSession().GetToken()
		other := signIn(t, c, email).GetToken()
		if _, err := c.Users.RequestEmailVerification(keyport.WithToken(ctx, session), &keyportv1.RequestEmailVerificationRequest{}); err != nil {
			t.Fatalf("RequestEmailVerification: %v (reason %q)", err, keyport.ErrorReason(err))
		}
		code := mp.waitFor(t, email, 1)[0].code(t, codeIntro)
		wrong := "000000"
		if code == wrong {
			wrong = "000001"
		}

		// The code works only in the session that asked for it.
		_, err := c.Users.VerifyEmail(ctx, &keyportv1.VerifyEmailRequest{Code: code})
		wantError(t, "VerifyEmail(code) without a session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
		_, err = c.Users.VerifyEmail(keyport.WithToken(ctx, other), &keyportv1.VerifyEmailRequest{Code: code})
		wantError(t, "VerifyEmail(code) in another session", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
		_, err = c.Users.VerifyEmail(keyport.WithToken(ctx, session), &keyportv1.VerifyEmailRequest{Code: wrong})
		wantError(t, "VerifyEmail with a wrong code", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

		verified, err := c.Users.VerifyEmail(keyport.WithToken(ctx, session), &keyportv1.VerifyEmailRequest{Code: code})
		if err != nil {
			t.Fatalf("VerifyEmail(code): %v (reason %q)", err, keyport.ErrorReason(err))
		}
		if !verified.GetUser().GetEmailVerified() {
			t.Errorf("VerifyEmail(code) returned an unverified user")
		}
		if !userOf(t, c, other).GetEmailVerified() {
			t.Errorf("the user's other session does not see the address verified")
		}
		_, err = c.Users.VerifyEmail(keyport.WithToken(ctx, session), &keyportv1.VerifyEmailRequest{Code: code})
		wantError(t, "VerifyEmail with a used code", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
	})
}

func TestEmailSignInThroughTheMailbox(t *testing.T) {
	c, mp := startMailServer(t)
	ctx := t.Context()
	email, up := signUp(t, c)
	userID := up.GetUser().GetId()

	start := startEmailSignIn(t, c, email)
	msg := mp.waitFor(t, email, 1)[0]
	code := msg.code(t, codeIntro)
	if !strings.HasSuffix(msg.Subject, " "+code) {
		t.Errorf("sign-in mail's subject %q does not end with the code %s", msg.Subject, code)
	}

	// Without the binding of the browser that asked, the right code is refused.
	other := uniqueEmail()
	signUpAs(t, c, other)
	otherStart := startEmailSignIn(t, c, other)
	for _, binding := range []string{"", "garbage", otherStart.GetBinding(), start.GetBinding() + "x", strings.Repeat("x", 10_000)} {
		_, err := c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithCode(binding, code))
		wantError(t, fmt.Sprintf("FinishEmailSignIn with binding %.12q", binding), err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
	}

	// Spaces in a typed code are ignored.
	done, err := c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithCode(start.GetBinding(), code[:3]+" "+code[3:]))
	if err != nil {
		t.Fatalf("FinishEmailSignIn(code): %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if done.GetNewUser() || done.GetUser().GetId() != userID {
		t.Errorf("FinishEmailSignIn: user %s new_user=%v, want the existing %s", done.GetUser().GetId(), done.GetNewUser(), userID)
	}
	checkSession(t, "FinishEmailSignIn", done.GetSession().GetSession(), userID)
	if !userOf(t, c, done.GetSession().GetToken()).GetEmailVerified() {
		t.Errorf("email_verified is false after an email sign-in: the mailbox is proven")
	}
	_, err = c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithCode(start.GetBinding(), code))
	wantError(t, "FinishEmailSignIn with a used code", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

	// The same with the link.
	start = startEmailSignIn(t, c, email)
	token := mp.waitFor(t, email, 2)[0].token(t, signInPath)
	if _, err := c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithToken(otherStart.GetBinding(), token)); err == nil {
		t.Errorf("FinishEmailSignIn with the link and another browser's binding signed in")
	}
	done, err = c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithToken(start.GetBinding(), token))
	if err != nil {
		t.Fatalf("FinishEmailSignIn(token): %v (reason %q)", err, keyport.ErrorReason(err))
	}
	checkSession(t, "FinishEmailSignIn(token)", done.GetSession().GetSession(), userID)
	_, err = c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithToken(start.GetBinding(), token))
	wantError(t, "FinishEmailSignIn with a used link", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

	// An address without an account gets the same kind of answer and no mail
	// (sign_up.by_email is off).
	unknown := uniqueEmail()
	if got := startEmailSignIn(t, c, unknown); len(got.GetBinding()) != len(start.GetBinding()) {
		t.Errorf("binding for an unknown address has %d characters, for a known one %d", len(got.GetBinding()), len(start.GetBinding()))
	}
	_, err = c.Sessions.StartEmailSignIn(ctx, &keyportv1.StartEmailSignInRequest{Email: "not an address"})
	wantError(t, "StartEmailSignIn with a malformed address", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	mp.noMoreMail(t, unknown, 0)
}

// signUpAs creates an account for email with the test password.
func signUpAs(t *testing.T, c *keyport.Client, email string) *keyportv1.SignUpResponse {
	t.Helper()
	resp, err := c.Users.SignUp(t.Context(), &keyportv1.SignUpRequest{Email: email, Password: password})
	if err != nil {
		t.Fatalf("SignUp(%s): %v (reason %q)", email, err, keyport.ErrorReason(err))
	}
	return resp
}

// The helpers a web app's pages use, in a web app: the binding cookie set
// by one handler reaches the page the mailed link opens, only in the
// browser that asked.
func TestEmailSignInThroughAWebApp(t *testing.T) {
	c, mp := startMailServer(t)
	email, up := signUp(t, c)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		start, err := c.Sessions.StartEmailSignIn(r.Context(), &keyportv1.StartEmailSignInRequest{Email: r.FormValue("email")})
		if err != nil {
			http.Error(w, keyport.ErrorReason(err), http.StatusBadRequest)
			return
		}
		http.SetCookie(w, keyport.EmailSignInCookie(start))
	})
	mux.HandleFunc("GET "+signInPath, func(w http.ResponseWriter, r *http.Request) {
		token, ok := keyport.TokenFromLink(r.URL.String())
		if !ok {
			http.Error(w, "no token", http.StatusBadRequest)
			return
		}
		resp, err := c.Sessions.FinishEmailSignIn(r.Context(), keyport.EmailSignInWithToken(keyport.EmailSignInBinding(r), token))
		if err != nil {
			http.Error(w, keyport.ErrorReason(err), http.StatusForbidden)
			return
		}
		http.SetCookie(w, keyport.ClearEmailSignInCookie())
		fmt.Fprint(w, resp.GetUser().GetId())
	})
	app := httptest.NewTLSServer(mux)
	t.Cleanup(app.Close)

	browser := func() *http.Client {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		b := *app.Client() // the server's client trusts its certificate; each browser gets its own jar
		b.Jar = jar
		return &b
	}
	get := func(b *http.Client, link string) (int, string) {
		t.Helper()
		// Open the mailed link on the test app instead of publicBaseURL.
		resp, err := b.Get(app.URL + strings.TrimPrefix(link, publicBaseURL))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}

	asking, elsewhere := browser(), browser()
	resp, err := asking.PostForm(app.URL+"/start", url.Values{"email": {email}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	appURL, _ := url.Parse(app.URL)
	if cookies := asking.Jar.Cookies(appURL); len(cookies) != 1 || cookies[0].Name != keyport.EmailSignInCookieName {
		t.Fatalf("after /start the browser holds cookies %v, want only %s", cookies, keyport.EmailSignInCookieName)
	}
	link := mp.waitFor(t, email, 1)[0].link(t, signInPath)

	// A forwarded link opened in another browser is refused.
	if code, body := get(elsewhere, link); code != http.StatusForbidden || body != keyport.ReasonEmailTokenInvalid {
		t.Errorf("the link in another browser: %d %q, want 403 %s", code, body, keyport.ReasonEmailTokenInvalid)
	}
	if code, body := get(asking, link); code != http.StatusOK || body != up.GetUser().GetId() {
		t.Errorf("the link in the browser that asked: %d %q, want 200 and the user id %s", code, body, up.GetUser().GetId())
	}
	if cookies := asking.Jar.Cookies(appURL); len(cookies) != 0 {
		t.Errorf("the binding cookie outlived the sign-in: %v", cookies)
	}
}

func TestEmailChangeThroughTheMailbox(t *testing.T) {
	c, mp := startMailServer(t)
	ctx := t.Context()
	email, up := signUp(t, c)
	session := up.GetSession().GetToken()
	authed := keyport.WithToken(ctx, session)
	newEmail := uniqueEmail()

	_, err := c.Users.RequestEmailChange(authed, &keyportv1.RequestEmailChangeRequest{NewEmail: newEmail, Password: password + "!"})
	wantError(t, "RequestEmailChange with a wrong password", err, codes.Unauthenticated, keyport.ReasonInvalidCredentials)
	_, err = c.Users.RequestEmailChange(authed, &keyportv1.RequestEmailChangeRequest{NewEmail: email, Password: password})
	wantError(t, "RequestEmailChange to the current address", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	_, err = c.Users.RequestEmailChange(ctx, &keyportv1.RequestEmailChangeRequest{NewEmail: newEmail, Password: password})
	wantError(t, "RequestEmailChange without a session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)

	if _, err := c.Users.RequestEmailChange(authed, &keyportv1.RequestEmailChangeRequest{NewEmail: newEmail, Password: password}); err != nil {
		t.Fatalf("RequestEmailChange: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	token := mp.waitFor(t, newEmail, 1)[0].token(t, changeEmailPath)
	if notice := mp.waitFor(t, email, 1)[0]; !strings.Contains(notice.Subject, "being changed") {
		t.Errorf("the old address got %q, want the change-requested notice", notice.Subject)
	}
	if got := userOf(t, c, session).GetEmail(); got != email {
		t.Errorf("before the link is used the account has %s, want still %s", got, email)
	}

	changed, err := c.Users.ConfirmEmailChange(ctx, &keyportv1.ConfirmEmailChangeRequest{Token: token, EndSessions: true})
	if err != nil {
		t.Fatalf("ConfirmEmailChange: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if u := changed.GetUser(); u.GetEmail() != newEmail || !u.GetEmailVerified() {
		t.Errorf("ConfirmEmailChange returned %s verified=%v, want %s verified", u.GetEmail(), u.GetEmailVerified(), newEmail)
	}
	if changed.GetRevokedSessions() != 1 {
		t.Errorf("ConfirmEmailChange(end_sessions) ended %d sessions, want 1", changed.GetRevokedSessions())
	}
	_, err = c.Sessions.GetSession(ctx, &keyportv1.GetSessionRequest{Token: session})
	wantError(t, "GetSession after the change with end_sessions", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	signIn(t, c, newEmail)
	_, err = c.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: email, Password: password})
	wantError(t, "SignIn with the old address", err, codes.Unauthenticated, keyport.ReasonInvalidCredentials)
	_, err = c.Users.ConfirmEmailChange(ctx, &keyportv1.ConfirmEmailChangeRequest{Token: token})
	wantError(t, "ConfirmEmailChange with a used token", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
}

// An account made by email sign-in has no password; it sets one with a
// mailed code, in the session that asked.
func TestPasswordSetupThroughTheMailbox(t *testing.T) {
	c, mp := startMailServer(t, "KEYPORT_SIGN_UP__BY_EMAIL=true")
	ctx := t.Context()
	email := uniqueEmail()

	// Two email sign-ins and the setup code: 3 link mails, the cap.
	signInByMail := func(n int) *keyportv1.FinishEmailSignInResponse {
		t.Helper()
		start := startEmailSignIn(t, c, email)
		code := mp.waitFor(t, email, n)[0].code(t, codeIntro)
		done, err := c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithCode(start.GetBinding(), code))
		if err != nil {
			t.Fatalf("FinishEmailSignIn: %v (reason %q)", err, keyport.ErrorReason(err))
		}
		return done
	}
	first := signInByMail(1)
	if !first.GetNewUser() || first.GetUser().GetEmail() != email || !first.GetUser().GetEmailVerified() {
		t.Fatalf("the first email sign-in: new_user=%v user %s verified=%v, want a new verified account for %s",
			first.GetNewUser(), first.GetUser().GetEmail(), first.GetUser().GetEmailVerified(), email)
	}
	second := signInByMail(2)
	if second.GetNewUser() || second.GetUser().GetId() != first.GetUser().GetId() {
		t.Fatalf("the second email sign-in: new_user=%v user %s, want the account %s", second.GetNewUser(), second.GetUser().GetId(), first.GetUser().GetId())
	}
	session := keyport.WithToken(ctx, first.GetSession().GetToken())
	otherSession := keyport.WithToken(ctx, second.GetSession().GetToken())

	if _, err := c.Users.RequestPasswordSetup(session, &keyportv1.RequestPasswordSetupRequest{}); err != nil {
		t.Fatalf("RequestPasswordSetup: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	code := mp.waitFor(t, email, 3)[0].code(t, codeIntro)
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	_, err := c.Users.SetPassword(otherSession, &keyportv1.SetPasswordRequest{Code: code, NewPassword: newPassword})
	wantError(t, "SetPassword in another session", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
	_, err = c.Users.SetPassword(session, &keyportv1.SetPasswordRequest{Code: wrong, NewPassword: newPassword})
	wantError(t, "SetPassword with a wrong code", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
	_, err = c.Users.SetPassword(session, &keyportv1.SetPasswordRequest{Code: code, NewPassword: "short"})
	wantError(t, "SetPassword with a weak password", err, codes.InvalidArgument, keyport.ReasonWeakPassword)

	if _, err := c.Users.SetPassword(session, &keyportv1.SetPasswordRequest{Code: code, NewPassword: newPassword}); err != nil {
		t.Fatalf("SetPassword: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if _, err := c.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: email, Password: newPassword}); err != nil {
		t.Errorf("SignIn with the password just set: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	userOf(t, c, second.GetSession().GetToken()) // other sessions stay
	if notice := mp.waitFor(t, email, 4)[0]; !strings.Contains(notice.Subject, "password was changed") {
		t.Errorf("fourth mail's subject %q, want the password-changed notice", notice.Subject)
	}

	// Now the account has a password: ChangePassword is the way.
	_, err = c.Users.SetPassword(session, &keyportv1.SetPasswordRequest{Code: code, NewPassword: "another passphrase"})
	wantError(t, "SetPassword with a password set", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	_, err = c.Users.RequestPasswordSetup(session, &keyportv1.RequestPasswordSetupRequest{})
	wantError(t, "RequestPasswordSetup with a password set", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
}

// Tokens that are empty, garbage, oversized, cut short or one character
// long all get the one answer, EMAIL_TOKEN_INVALID, and use nothing up.
func TestBadMailTokens(t *testing.T) {
	c, mp := startMailServer(t)
	ctx := t.Context()
	email, _ := signUp(t, c)
	if _, err := c.Users.RequestPasswordReset(ctx, &keyportv1.RequestPasswordResetRequest{Email: email}); err != nil {
		t.Fatalf("RequestPasswordReset: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	good := mp.waitFor(t, email, 1)[0].token(t, resetPath)

	for _, bad := range []string{
		"",
		"garbage",
		"kpm_",
		good[:len(good)-1],
		good + "x",
		"kpm_" + strings.Repeat("A", 43), // well-formed, unknown
		strings.Repeat("x", 10_000),
		"kpm_" + strings.Repeat("A", 10_000),
	} {
		what := fmt.Sprintf("token %.16q (%d bytes)", bad, len(bad))
		_, err := c.Users.ResetPassword(ctx, &keyportv1.ResetPasswordRequest{Token: bad, NewPassword: newPassword})
		wantError(t, "ResetPassword with "+what, err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
		_, err = c.Users.VerifyEmail(ctx, &keyportv1.VerifyEmailRequest{Token: bad})
		wantError(t, "VerifyEmail with "+what, err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
		_, err = c.Users.ConfirmEmailChange(ctx, &keyportv1.ConfirmEmailChangeRequest{Token: bad})
		wantError(t, "ConfirmEmailChange with "+what, err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
		_, err = c.Sessions.FinishEmailSignIn(ctx, keyport.EmailSignInWithToken(bad, bad))
		wantError(t, "FinishEmailSignIn with "+what, err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
	}
	// A request with no proof at all.
	_, err := c.Sessions.FinishEmailSignIn(ctx, &keyportv1.FinishEmailSignInRequest{Binding: "x"})
	wantError(t, "FinishEmailSignIn without a proof", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)
	// Addresses are checked before anything is mailed.
	for _, bad := range []string{"", "not an address", strings.Repeat("a", 300) + "@example.com"} {
		_, err := c.Users.RequestPasswordReset(ctx, &keyportv1.RequestPasswordResetRequest{Email: bad})
		wantError(t, fmt.Sprintf("RequestPasswordReset(%.12q)", bad), err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	}

	// None of them used up the good link.
	if _, err := c.Users.ResetPassword(ctx, &keyportv1.ResetPasswordRequest{Token: good, NewPassword: newPassword}); err != nil {
		t.Errorf("ResetPassword with the good token after the bad ones: %v (reason %q)", err, keyport.ErrorReason(err))
	}
}

func TestTokenFromLink(t *testing.T) {
	for _, tc := range []struct {
		link, token string
		ok          bool
	}{
		{"https://app.example.com/reset-password?token=kpm_abc-_09", "kpm_abc-_09", true},
		{"  http://app.example.test/verify-email?token=kpm_x\n", "kpm_x", true},
		{"/sign-in/email?token=kpm_x&utm_source=mail", "kpm_x", true},
		{"https://app.example.com/reset-password?lang=de&token=kpm_a%2Bb#top", "kpm_a+b", true},
		{"https://app.example.com/reset-password", "", false},
		{"https://app.example.com/reset-password?token=", "", false},
		{"https://app.example.com/reset-password?token=a&token=b", "", false},
		{"https://app.example.com/reset-password?token=%zz", "", false},
		{"kpm_bare", "", false},
		{"http://[::1", "", false},
		{"", "", false},
	} {
		token, ok := keyport.TokenFromLink(tc.link)
		if token != tc.token || ok != tc.ok {
			t.Errorf("TokenFromLink(%q) = %q, %v; want %q, %v", tc.link, token, ok, tc.token, tc.ok)
		}
	}
}

func TestEmailSignInCookie(t *testing.T) {
	start := &keyportv1.StartEmailSignInResponse{Binding: "b1nd1ng"}
	start.ExpiresAt = timestampIn(5 * time.Minute)
	c := keyport.EmailSignInCookie(start)
	if c.Name != keyport.EmailSignInCookieName || c.Value != "b1nd1ng" || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %s=%s path %q domain %q", c.Name, c.Value, c.Path, c.Domain)
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie Secure=%v HttpOnly=%v SameSite=%v, want Secure, HttpOnly, Lax", c.Secure, c.HttpOnly, c.SameSite)
	}
	if c.MaxAge < 299 || c.MaxAge > 300 {
		t.Errorf("MaxAge %d, want the 300 s left of the sign-in", c.MaxAge)
	}
	if err := c.Valid(); err != nil {
		t.Errorf("cookie is not valid: %v", err)
	}
	// No expiry: the longest a sign-in lasts; a far one is capped there too.
	if c := keyport.EmailSignInCookie(&keyportv1.StartEmailSignInResponse{Binding: "b"}); c.MaxAge != 600 {
		t.Errorf("MaxAge without expires_at = %d, want 600", c.MaxAge)
	}
	start.ExpiresAt = timestampIn(time.Hour)
	if c := keyport.EmailSignInCookie(start); c.MaxAge != 600 {
		t.Errorf("MaxAge for an hour = %d, want 600", c.MaxAge)
	}

	r := httptest.NewRequest(http.MethodGet, "/sign-in/email?token=kpm_x", nil)
	if b := keyport.EmailSignInBinding(r); b != "" {
		t.Errorf("EmailSignInBinding without a cookie = %q", b)
	}
	r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
	r.AddCookie(keyport.EmailSignInCookie(&keyportv1.StartEmailSignInResponse{Binding: "b1nd1ng"}))
	if b := keyport.EmailSignInBinding(r); b != "b1nd1ng" {
		t.Errorf("EmailSignInBinding = %q, want b1nd1ng", b)
	}

	clear := keyport.ClearEmailSignInCookie()
	if clear.Name != keyport.EmailSignInCookieName || clear.MaxAge >= 0 || clear.Path != "/" || !clear.Secure {
		t.Errorf("clearing cookie %+v", clear)
	}
	w := httptest.NewRecorder()
	http.SetCookie(w, clear)
	if got := w.Header().Get("Set-Cookie"); !strings.Contains(got, "Max-Age=0") {
		t.Errorf("Set-Cookie %q does not delete the cookie", got)
	}
}

func TestChallengeCookie(t *testing.T) {
	kpc := "kpc_" + strings.Repeat("x", 43)
	challenge := &keyportv1.SignInChallenge{Challenge: kpc, ExpiresAt: timestampIn(5 * time.Minute)}
	c := keyport.ChallengeCookie(challenge)
	if keyport.ChallengeCookieName != "__Host-keyport_challenge" {
		t.Errorf("ChallengeCookieName = %q, the Rust middleware's is __Host-keyport_challenge", keyport.ChallengeCookieName)
	}
	if c.Name != keyport.ChallengeCookieName || c.Value != kpc || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %s=%s path %q domain %q", c.Name, c.Value, c.Path, c.Domain)
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie Secure=%v HttpOnly=%v SameSite=%v, want Secure, HttpOnly, Lax", c.Secure, c.HttpOnly, c.SameSite)
	}
	if c.MaxAge < 299 || c.MaxAge > 300 {
		t.Errorf("MaxAge %d, want the 300 s left of the challenge", c.MaxAge)
	}
	if err := c.Valid(); err != nil {
		t.Errorf("cookie is not valid: %v", err)
	}
	w := httptest.NewRecorder()
	http.SetCookie(w, c)
	want := "__Host-keyport_challenge=" + kpc + "; Path=/; Max-Age="
	if got := w.Header().Get("Set-Cookie"); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "; HttpOnly; Secure; SameSite=Lax") {
		t.Errorf("Set-Cookie %q", got)
	}

	// Max-Age: until expires_at, capped at 10 minutes, at least a second.
	for _, tc := range []struct {
		name   string
		in     *time.Duration
		lo, hi int
	}{
		{"no expires_at", nil, 600, 600},
		{"an hour", ptr(time.Hour), 600, 600},
		{"just over 10 minutes", ptr(601 * time.Second), 600, 600},
		{"90.5 s, rounded up", ptr(90*time.Second + 500*time.Millisecond), 90, 91},
		{"expired", ptr(-30 * time.Second), 1, 1},
	} {
		ch := &keyportv1.SignInChallenge{Challenge: kpc}
		if tc.in != nil {
			ch.ExpiresAt = timestampIn(*tc.in)
		}
		if got := keyport.ChallengeCookie(ch).MaxAge; got < tc.lo || got > tc.hi {
			t.Errorf("%s: MaxAge %d, want %d..%d", tc.name, got, tc.lo, tc.hi)
		}
	}

	// Reading it back: missing, among other cookies, the round trip through a browser.
	r := httptest.NewRequest(http.MethodGet, "/sign-in/second-factor", nil)
	if got := keyport.ChallengeFromCookie(r); got != "" {
		t.Errorf("ChallengeFromCookie without a cookie = %q", got)
	}
	r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
	r.AddCookie(keyport.EmailSignInCookie(&keyportv1.StartEmailSignInResponse{Binding: "b1nd1ng"}))
	if got := keyport.ChallengeFromCookie(r); got != "" {
		t.Errorf("ChallengeFromCookie with only other cookies = %q", got)
	}
	r.AddCookie(c)
	r.AddCookie(&http.Cookie{Name: "__Host-keyport_session", Value: "kp_a.b"})
	if got := keyport.ChallengeFromCookie(r); got != kpc {
		t.Errorf("ChallengeFromCookie = %q, want %q", got, kpc)
	}
	if got := keyport.EmailSignInBinding(r); got != "b1nd1ng" {
		t.Errorf("EmailSignInBinding next to the challenge = %q, want b1nd1ng", got)
	}
	jarURL, _ := url.Parse("https://app.example.test/")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(jarURL, []*http.Cookie{c})
	sent := httptest.NewRequest(http.MethodPost, jarURL.String()+"sign-in/second-factor", nil)
	for _, cookie := range jar.Cookies(jarURL) {
		sent.AddCookie(cookie)
	}
	if got := keyport.ChallengeFromCookie(sent); got != kpc {
		t.Errorf("ChallengeFromCookie after a browser's jar = %q, want %q", got, kpc)
	}

	clear := keyport.ClearChallengeCookie()
	if clear.Name != keyport.ChallengeCookieName || clear.MaxAge >= 0 || clear.Path != "/" || !clear.Secure || !clear.HttpOnly {
		t.Errorf("clearing cookie %+v", clear)
	}
	w = httptest.NewRecorder()
	http.SetCookie(w, clear)
	if got := w.Header().Get("Set-Cookie"); got != "__Host-keyport_challenge=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax" {
		t.Errorf("Set-Cookie %q does not delete the cookie", got)
	}
	jar.SetCookies(jarURL, []*http.Cookie{clear})
	if cookies := jar.Cookies(jarURL); len(cookies) != 0 {
		t.Errorf("the jar keeps %v after the clearing cookie", cookies)
	}
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// timestampIn is now + d as a protobuf timestamp.
func timestampIn(d time.Duration) *timestamppb.Timestamp {
	return timestamppb.New(time.Now().Add(d))
}
