package keyport_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
)

// The live server has [passkeys] for localhost (passkeysEnv), for pages on
// https://localhost. Most tests answer with malformed credentials, to cover
// the ceremonies' options and every refusal;
// TestPasskeyCeremoniesWithASoftwareAuthenticator answers as a real
// authenticator would.

var ceremonyShape = regexp.MustCompile(`^kpk_[A-Za-z0-9_-]{43}$`)

// unknownCeremony is well-formed, and never issued.
var unknownCeremony = "kpk_" + strings.Repeat("A", 43)

// malformedCredentials are no PublicKeyCredential, the last one only looks
// like one.
var malformedCredentials = []string{"", "not json", `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`}

func TestPasskeyCeremonyCookie(t *testing.T) {
	kpk := "kpk_" + strings.Repeat("x", 43)
	c := keyport.PasskeyCeremonyCookie(&keyportv1.StartPasskeySignInResponse{Ceremony: kpk, ExpiresAt: timestampIn(5 * time.Minute)})
	if keyport.PasskeyCeremonyCookieName != "__Host-keyport_passkey" {
		t.Errorf("PasskeyCeremonyCookieName = %q, the Rust middleware's is __Host-keyport_passkey", keyport.PasskeyCeremonyCookieName)
	}
	if c.Name != keyport.PasskeyCeremonyCookieName || c.Value != kpk || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %s=%s path %q domain %q", c.Name, c.Value, c.Path, c.Domain)
	}
	if err := c.Valid(); err != nil {
		t.Errorf("cookie is not valid: %v", err)
	}
	w := httptest.NewRecorder()
	http.SetCookie(w, c)
	if got := w.Header().Get("Set-Cookie"); !regexp.MustCompile(`^__Host-keyport_passkey=` + kpk + `; Path=/; Max-Age=(299|300); HttpOnly; Secure; SameSite=Lax$`).MatchString(got) {
		t.Errorf("Set-Cookie %q", got)
	}

	// Max-Age: until expires_at, capped at 5 minutes, at least a second.
	for _, tc := range []struct {
		name   string
		in     *time.Duration
		lo, hi int
	}{
		{"no expires_at", nil, 300, 300},
		{"an hour", ptr(time.Hour), 300, 300},
		{"two minutes", ptr(2 * time.Minute), 119, 120},
		{"90.5 s, rounded up", ptr(90*time.Second + 500*time.Millisecond), 90, 91},
		{"expired", ptr(-30 * time.Second), 1, 1},
	} {
		start := &keyportv1.StartPasskeySignInResponse{Ceremony: kpk}
		if tc.in != nil {
			start.ExpiresAt = timestampIn(*tc.in)
		}
		if got := keyport.PasskeyCeremonyCookie(start).MaxAge; got < tc.lo || got > tc.hi {
			t.Errorf("%s: MaxAge %d, want %d..%d", tc.name, got, tc.lo, tc.hi)
		}
	}

	// Reading it back: missing, among other cookies, the challenge's helper does not read it.
	r := httptest.NewRequest(http.MethodPost, "/sign-in/passkey", nil)
	if got := keyport.PasskeyCeremonyFromCookie(r); got != "" {
		t.Errorf("PasskeyCeremonyFromCookie without a cookie = %q", got)
	}
	r.AddCookie(&http.Cookie{Name: keyport.ChallengeCookieName, Value: "kpc_x"})
	r.AddCookie(&http.Cookie{Name: "keyport_passkey", Value: "kpk_y"})
	if got := keyport.PasskeyCeremonyFromCookie(r); got != "" {
		t.Errorf("PasskeyCeremonyFromCookie with only other cookies = %q", got)
	}
	r.AddCookie(c)
	if got := keyport.PasskeyCeremonyFromCookie(r); got != kpk {
		t.Errorf("PasskeyCeremonyFromCookie = %q, want %q", got, kpk)
	}
	if got := keyport.ChallengeFromCookie(r); got != "kpc_x" {
		t.Errorf("ChallengeFromCookie next to the ceremony = %q, want kpc_x", got)
	}

	clear := keyport.ClearPasskeyCeremonyCookie()
	w = httptest.NewRecorder()
	http.SetCookie(w, clear)
	if got := w.Header().Get("Set-Cookie"); got != "__Host-keyport_passkey=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax" {
		t.Errorf("Set-Cookie %q does not delete the cookie", got)
	}
}

// The challenge cookie carries the challenge's passkey request as the Rust
// middleware writes it: after a ".", in base64url without padding.
func TestChallengeCookieCarriesThePasskeyOptions(t *testing.T) {
	kpc := "kpc_" + strings.Repeat("x", 43)
	options := `{"challenge":"c2lnbg","rpId":"localhost","allowCredentials":[{"id":"a+b/c"}],"n":"Zoë"}`
	c := keyport.ChallengeCookie(&keyportv1.SignInChallenge{Challenge: kpc, PasskeyOptions: options, ExpiresAt: timestampIn(5 * time.Minute)})
	if want := kpc + "." + base64.RawURLEncoding.EncodeToString([]byte(options)); c.Value != want {
		t.Errorf("cookie value %q, want %q", c.Value, want)
	}
	if err := c.Valid(); err != nil {
		t.Errorf("cookie is not valid: %v", err)
	}
	r := httptest.NewRequest(http.MethodGet, "/sign-in/second-factor", nil)
	r.AddCookie(c)
	if got := keyport.ChallengeFromCookie(r); got != kpc {
		t.Errorf("ChallengeFromCookie = %q, want the challenge alone", got)
	}
	if got := keyport.ChallengePasskeyOptionsFromCookie(r); got != options {
		t.Errorf("ChallengePasskeyOptionsFromCookie = %q, want %q", got, options)
	}

	// No passkey: the challenge alone, and no options.
	if c := keyport.ChallengeCookie(&keyportv1.SignInChallenge{Challenge: kpc}); c.Value != kpc {
		t.Errorf("cookie value without passkey options %q, want %q", c.Value, kpc)
	}
	for _, value := range []string{"", kpc, kpc + ".", kpc + ".%%%", kpc + "._w"} {
		r := httptest.NewRequest(http.MethodGet, "/sign-in/second-factor", nil)
		if value != "" {
			r.AddCookie(&http.Cookie{Name: keyport.ChallengeCookieName, Value: value})
		}
		if got := keyport.ChallengePasskeyOptionsFromCookie(r); got != "" {
			t.Errorf("ChallengePasskeyOptionsFromCookie of %q = %q, want none", value, got)
		}
	}
}

func TestCompleteSignInWithPasskey(t *testing.T) {
	req := keyport.CompleteSignInWithPasskey("kpc_x", `{"id":"a"}`)
	if req.GetChallenge() != "kpc_x" || req.GetPasskeyCredential() != `{"id":"a"}` {
		t.Errorf("request %v", req)
	}
}

// startPasskeySignIn starts a passkey sign-in and checks the ceremony's shape.
func startPasskeySignIn(t *testing.T, c *keyport.Client) *keyportv1.StartPasskeySignInResponse {
	t.Helper()
	start, err := c.Sessions.StartPasskeySignIn(t.Context(), &keyportv1.StartPasskeySignInRequest{})
	if err != nil {
		t.Fatalf("StartPasskeySignIn: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if !ceremonyShape.MatchString(start.GetCeremony()) {
		t.Fatalf("ceremony %q is not kpk_ and 43 base64url characters", start.GetCeremony())
	}
	return start
}

func TestStartPasskeySignIn(t *testing.T) {
	c := newClient(t)
	start := startPasskeySignIn(t, c)
	if left := time.Until(start.GetExpiresAt().AsTime()); left <= 0 || left > 5*time.Minute {
		t.Errorf("the ceremony works for %v, want up to 5 minutes", left)
	}
	var options struct {
		RpID             string            `json:"rpId"`
		UserVerification string            `json:"userVerification"`
		AllowCredentials []json.RawMessage `json:"allowCredentials"`
	}
	if err := json.Unmarshal([]byte(start.GetOptions()), &options); err != nil {
		t.Fatalf("options %q: %v", start.GetOptions(), err)
	}
	if options.RpID != "localhost" || options.UserVerification != "required" || len(options.AllowCredentials) != 0 {
		t.Errorf("options %s: want rpId localhost, userVerification required, no allowCredentials", start.GetOptions())
	}
	if again := startPasskeySignIn(t, c); again.GetCeremony() == start.GetCeremony() {
		t.Error("two starts answered the same ceremony")
	}
}

func TestFinishPasskeySignInRefusals(t *testing.T) {
	c := newClient(t)
	finish := func(ceremony, credential string) error {
		_, err := c.Sessions.FinishPasskeySignIn(t.Context(), &keyportv1.FinishPasskeySignInRequest{Ceremony: ceremony, Credential: credential})
		return err
	}
	// A malformed answer uses the ceremony up.
	for _, credential := range malformedCredentials {
		ceremony := startPasskeySignIn(t, c).GetCeremony()
		wantError(t, fmt.Sprintf("answer %q", credential), finish(ceremony, credential), codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
		wantError(t, "the used ceremony", finish(ceremony, credential), codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
	}
	for _, ceremony := range []string{"", "kpk_short", unknownCeremony, "kpc_" + strings.Repeat("A", 43)} {
		wantError(t, fmt.Sprintf("ceremony %q", ceremony), finish(ceremony, malformedCredentials[2]), codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
	}

	// Of 6 parallel finishes with one ceremony, none signs in.
	ceremony := startPasskeySignIn(t, c).GetCeremony()
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = finish(ceremony, malformedCredentials[2]) })
	}
	wg.Wait()
	for i, err := range errs {
		wantError(t, fmt.Sprintf("parallel finish %d", i), err, codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
	}
}

// A signed-up user has no passkey, and every wrong step is refused.
func TestPasskeysOfAUserWithout(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	ctx := keyport.WithToken(t.Context(), up.GetSession().GetToken())

	listed, err := c.Passkeys.ListPasskeys(ctx, &keyportv1.ListPasskeysRequest{})
	if err != nil || len(listed.GetPasskeys()) != 0 {
		t.Fatalf("ListPasskeys = %v, %v; want none", listed.GetPasskeys(), err)
	}
	factors, err := c.TwoFactor.ListFactors(ctx, &keyportv1.ListFactorsRequest{})
	if err != nil || factors.GetPasskeys() != 0 {
		t.Fatalf("ListFactors = %v, %v; want 0 passkeys", factors, err)
	}

	start, err := c.Passkeys.StartPasskeyRegistration(ctx, &keyportv1.StartPasskeyRegistrationRequest{})
	if err != nil {
		t.Fatalf("StartPasskeyRegistration: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if !ceremonyShape.MatchString(start.GetCeremony()) {
		t.Errorf("ceremony %q", start.GetCeremony())
	}
	var options struct {
		RP   struct{ ID string } `json:"rp"`
		User struct {
			Name string `json:"name"`
		} `json:"user"`
		AuthenticatorSelection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
	}
	if err := json.Unmarshal([]byte(start.GetOptions()), &options); err != nil {
		t.Fatalf("options %q: %v", start.GetOptions(), err)
	}
	if options.RP.ID != "localhost" || options.User.Name != email ||
		options.AuthenticatorSelection.ResidentKey != "required" || options.AuthenticatorSelection.UserVerification != "required" {
		t.Errorf("creation options %s: want rp localhost, user.name %s, a discoverable credential with user verification", start.GetOptions(), email)
	}

	_, err = c.Passkeys.FinishPasskeyRegistration(ctx, &keyportv1.FinishPasskeyRegistrationRequest{Ceremony: start.GetCeremony(), Credential: "{}"})
	wantError(t, "a garbage credential", err, codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
	if listed, err := c.Passkeys.ListPasskeys(ctx, &keyportv1.ListPasskeysRequest{}); err != nil || len(listed.GetPasskeys()) != 0 {
		t.Errorf("after a refused registration ListPasskeys = %v, %v; want none", listed.GetPasskeys(), err)
	}

	const unknown = "0190b5a4-3c2f-7d1e-8a9b-0c1d2e3f4a5b"
	_, err = c.Passkeys.RenamePasskey(ctx, &keyportv1.RenamePasskeyRequest{Id: unknown, Name: "Laptop"})
	wantError(t, "renaming an unknown passkey", err, codes.NotFound, keyport.ReasonPasskeyNotFound)
	_, err = c.Passkeys.DeletePasskey(ctx, &keyportv1.DeletePasskeyRequest{Id: unknown})
	wantError(t, "deleting an unknown passkey", err, codes.NotFound, keyport.ReasonPasskeyNotFound)
	_, err = c.TwoFactor.StartPasskeyStepUp(ctx, &keyportv1.StartPasskeyStepUpRequest{})
	wantError(t, "a step-up without a passkey", err, codes.FailedPrecondition, keyport.ReasonSecondFactorNotEnrolled)
	_, err = c.TwoFactor.StepUp(ctx, &keyportv1.StepUpRequest{Answer: &keyportv1.StepUpRequest_Passkey{
		Passkey: &keyportv1.PasskeyAssertion{Ceremony: unknownCeremony, Credential: "{}"},
	}})
	wantError(t, "a passkey step-up without a passkey", err, codes.FailedPrecondition, keyport.ReasonSecondFactorNotEnrolled)

	got, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: up.GetSession().GetToken()})
	if err != nil || got.GetSession().GetAssuranceLevel() != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL1 {
		t.Errorf("the session after the refusals: %v, %v; want AAL1", got.GetSession().GetAssuranceLevel(), err)
	}

	_, err = c.Passkeys.ListPasskeys(t.Context(), &keyportv1.ListPasskeysRequest{})
	wantError(t, "ListPasskeys without a session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
}

func TestPasskeysDisabled(t *testing.T) {
	addr := startTestServer(t, "KEYPORT_PASSKEYS__RP_ID=")
	c, err := keyport.Dial(addr, keyport.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Sessions.StartPasskeySignIn(t.Context(), &keyportv1.StartPasskeySignInRequest{})
	wantError(t, "StartPasskeySignIn", err, codes.FailedPrecondition, keyport.ReasonPasskeysDisabled)
	_, up := signUp(t, c)
	_, err = c.Passkeys.StartPasskeyRegistration(keyport.WithToken(t.Context(), up.GetSession().GetToken()), &keyportv1.StartPasskeyRegistrationRequest{})
	wantError(t, "StartPasskeyRegistration", err, codes.FailedPrecondition, keyport.ReasonPasskeysDisabled)
}

// The helpers in a web app: the ceremony cookie set by one handler reaches
// the finishing one in the same browser, and is deleted whatever the
// answer.
func TestPasskeySignInThroughAWebApp(t *testing.T) {
	c := newClient(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		start, err := c.Sessions.StartPasskeySignIn(r.Context(), &keyportv1.StartPasskeySignInRequest{})
		if err != nil {
			http.Error(w, keyport.ErrorReason(err), http.StatusServiceUnavailable)
			return
		}
		http.SetCookie(w, keyport.PasskeyCeremonyCookie(start))
		fmt.Fprint(w, start.GetOptions())
	})
	mux.HandleFunc("POST /finish", func(w http.ResponseWriter, r *http.Request) {
		credential, _ := io.ReadAll(r.Body)
		http.SetCookie(w, keyport.ClearPasskeyCeremonyCookie())
		ceremony := keyport.PasskeyCeremonyFromCookie(r)
		_, err := c.Sessions.FinishPasskeySignIn(r.Context(), &keyportv1.FinishPasskeySignInRequest{Ceremony: ceremony, Credential: string(credential)})
		if err != nil {
			http.Error(w, fmt.Sprintf("%q %s", ceremony, keyport.ErrorReason(err)), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "signed in")
	})
	app := httptest.NewTLSServer(mux)
	t.Cleanup(app.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := *app.Client()
	browser.Jar = jar
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := browser.Post(app.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}

	if code, options := post("/start", ""); code != http.StatusOK || !strings.Contains(options, `"rpId":"localhost"`) {
		t.Fatalf("/start: %d %s", code, options)
	}
	appURL, _ := url.Parse(app.URL)
	cookies := jar.Cookies(appURL)
	if len(cookies) != 1 || cookies[0].Name != keyport.PasskeyCeremonyCookieName || !ceremonyShape.MatchString(cookies[0].Value) {
		t.Fatalf("after /start the browser holds %v, want the ceremony cookie", cookies)
	}
	ceremony := cookies[0].Value
	if code, body := post("/finish", malformedCredentials[2]); code != http.StatusBadRequest || body != fmt.Sprintf("%q %s", ceremony, keyport.ReasonPasskeyInvalid) {
		t.Errorf("/finish with a malformed answer: %d %q, want 400 with the browser's ceremony and %s", code, body, keyport.ReasonPasskeyInvalid)
	}
	if cookies := jar.Cookies(appURL); len(cookies) != 0 {
		t.Errorf("the ceremony cookie outlived the finish: %v", cookies)
	}
	if code, body := post("/finish", malformedCredentials[2]); code != http.StatusBadRequest || body != `"" `+keyport.ReasonPasskeyInvalid {
		t.Errorf("/finish without the cookie: %d %q", code, body)
	}
}

// The whole life of a passkey, answered by a software authenticator
// (virtualwebauthn) for the test server's relying party: registration, a
// sign-in with the passkey alone, the passkey as the second factor of a
// password sign-in and of a step-up, rename and delete.
func TestPasskeyCeremoniesWithASoftwareAuthenticator(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	ctx := keyport.WithToken(t.Context(), up.GetSession().GetToken())
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "Keyport", Origin: "https://localhost"}

	// Registration: the options name the user, whose handle the authenticator keeps.
	start, err := c.Passkeys.StartPasskeyRegistration(ctx, &keyportv1.StartPasskeyRegistrationRequest{})
	if err != nil {
		t.Fatalf("StartPasskeyRegistration: %v", err)
	}
	creation, err := virtualwebauthn.ParseAttestationOptions(start.GetOptions())
	if err != nil {
		t.Fatalf("creation options %s: %v", start.GetOptions(), err)
	}
	authenticator := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(creation.UserID)})
	credential := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
	registered, err := c.Passkeys.FinishPasskeyRegistration(ctx, &keyportv1.FinishPasskeyRegistrationRequest{
		Ceremony:   start.GetCeremony(),
		Credential: virtualwebauthn.CreateAttestationResponse(rp, authenticator, credential, *creation),
		Name:       "Test key",
	})
	if err != nil {
		t.Fatalf("FinishPasskeyRegistration: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	authenticator.AddCredential(credential)
	passkey := registered.GetPasskey()
	if passkey.GetName() != "Test key" || registered.GetSession().GetAssuranceLevel() != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("registered %v, session %v; want the name, an AAL2 session", passkey, registered.GetSession().GetAssuranceLevel())
	}
	if factors, err := c.TwoFactor.ListFactors(ctx, &keyportv1.ListFactorsRequest{}); err != nil || factors.GetPasskeys() != 1 {
		t.Errorf("ListFactors = %v, %v; want 1 passkey", factors, err)
	}
	answer := func(options string) string {
		t.Helper()
		request, err := virtualwebauthn.ParseAssertionOptions(options)
		if err != nil {
			t.Fatalf("request options %s: %v", options, err)
		}
		return virtualwebauthn.CreateAssertionResponse(rp, authenticator, credential, *request)
	}

	// A sign-in with the passkey alone: AAL2, once per ceremony and answer.
	signInStart := startPasskeySignIn(t, c)
	signInAnswer := answer(signInStart.GetOptions())
	signedIn, err := c.Sessions.FinishPasskeySignIn(t.Context(), &keyportv1.FinishPasskeySignInRequest{Ceremony: signInStart.GetCeremony(), Credential: signInAnswer})
	if err != nil {
		t.Fatalf("FinishPasskeySignIn: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	grant := signedIn.GetSession()
	if grant.GetUser().GetEmail() != email || grant.GetSession().GetAssuranceLevel() != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("signed in as %s at %v, want %s at AAL2", grant.GetUser().GetEmail(), grant.GetSession().GetAssuranceLevel(), email)
	}
	_, err = c.Sessions.FinishPasskeySignIn(t.Context(), &keyportv1.FinishPasskeySignInRequest{Ceremony: signInStart.GetCeremony(), Credential: signInAnswer})
	wantError(t, "the answer again", err, codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
	_, err = c.Sessions.FinishPasskeySignIn(t.Context(), &keyportv1.FinishPasskeySignInRequest{Ceremony: startPasskeySignIn(t, c).GetCeremony(), Credential: signInAnswer})
	wantError(t, "the answer to another ceremony", err, codes.Unauthenticated, keyport.ReasonPasskeyInvalid)

	// The second factor of a password sign-in: the challenge offers the passkey, and carries its request.
	resp, err := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: email, Password: password})
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	challenge, ok := keyport.SignInChallenge(resp)
	if !ok || !slices.Contains(challenge.GetFactors(), keyportv1.SecondFactor_SECOND_FACTOR_PASSKEY) || challenge.GetPasskeyOptions() == "" {
		t.Fatalf("SignIn answered %v, want a challenge offering the passkey", resp.GetOutcome())
	}
	_, err = c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithPasskey(challenge.GetChallenge(), malformedCredentials[2]))
	wantError(t, "a malformed passkey answer to the challenge", err, codes.Unauthenticated, keyport.ReasonSecondFactorInvalid)
	// The challenge still works, from the cookie the code page reads.
	cookie := httptest.NewRequest(http.MethodPost, "/sign-in/second-factor", nil)
	cookie.AddCookie(keyport.ChallengeCookie(challenge))
	done, err := c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithPasskey(
		keyport.ChallengeFromCookie(cookie), answer(keyport.ChallengePasskeyOptionsFromCookie(cookie))))
	if err != nil {
		t.Fatalf("CompleteSignIn with the passkey: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if done.GetSession().GetSession().GetAssuranceLevel() != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("CompleteSignIn session at %v, want AAL2", done.GetSession().GetSession().GetAssuranceLevel())
	}

	// A step-up, then the changes it allows.
	session := keyport.WithToken(t.Context(), grant.GetToken())
	stepUp, err := c.TwoFactor.StartPasskeyStepUp(session, &keyportv1.StartPasskeyStepUpRequest{})
	if err != nil {
		t.Fatalf("StartPasskeyStepUp: %v", err)
	}
	steppedUp, err := c.TwoFactor.StepUp(session, &keyportv1.StepUpRequest{Answer: &keyportv1.StepUpRequest_Passkey{
		Passkey: &keyportv1.PasskeyAssertion{Ceremony: stepUp.GetCeremony(), Credential: answer(stepUp.GetOptions())},
	}})
	if err != nil || steppedUp.GetSession().GetAssuranceLevel() != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Fatalf("StepUp with the passkey: %v, %v (reason %q); want AAL2", steppedUp.GetSession().GetAssuranceLevel(), err, keyport.ErrorReason(err))
	}
	renamed, err := c.Passkeys.RenamePasskey(session, &keyportv1.RenamePasskeyRequest{Id: passkey.GetId(), Name: "Laptop"})
	if err != nil || renamed.GetPasskey().GetName() != "Laptop" || renamed.GetPasskey().GetLastUsedAt() == nil {
		t.Errorf("RenamePasskey = %v, %v; want Laptop, used", renamed.GetPasskey(), err)
	}
	if _, err := c.Passkeys.DeletePasskey(session, &keyportv1.DeletePasskeyRequest{Id: passkey.GetId()}); err != nil {
		t.Fatalf("DeletePasskey: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	again := startPasskeySignIn(t, c)
	_, err = c.Sessions.FinishPasskeySignIn(t.Context(), &keyportv1.FinishPasskeySignInRequest{Ceremony: again.GetCeremony(), Credential: answer(again.GetOptions())})
	wantError(t, "a deleted passkey", err, codes.Unauthenticated, keyport.ReasonPasskeyInvalid)
}
