package keyport_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
)

// Second factors with the SDK: SignInChallenge and the CompleteSignIn
// builders on their own, then an authenticator app against the live server
// (EnrollTotp, ConfirmTotp, SignIn's challenge, CompleteSignIn with TOTP
// and backup codes). The test plays the app (totp_test.go) on the real
// clock.

// unknownChallenge is well formed but never issued: kpc_ and 43 base64url
// characters.
var unknownChallenge = "kpc_" + strings.Repeat("A", 43)

// enrolled is a user with the app on: the secret the phone holds and the
// printed backup codes.
type enrolled struct {
	email       string
	token       string
	secret      string
	backupCodes []string
}

// enrollTotp signs up a user and turns the authenticator app on with the
// current step's code.
func enrollTotp(t *testing.T, c *keyport.Client) enrolled {
	t.Helper()
	email, up := signUp(t, c)
	ctx := keyport.WithToken(t.Context(), up.GetSession().GetToken())
	started, err := c.TwoFactor.EnrollTotp(ctx, &keyportv1.EnrollTotpRequest{})
	if err != nil {
		t.Fatalf("EnrollTotp: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(started.GetSecret()) {
		t.Errorf("EnrollTotp secret %q, want 160 bits in base32", started.GetSecret())
	}
	if !strings.HasPrefix(started.GetOtpauthUri(), "otpauth://totp/") {
		t.Errorf("EnrollTotp otpauth_uri %q", started.GetOtpauthUri())
	}
	if !bytes.Contains(started.GetQrCodeSvg(), []byte("<svg")) {
		t.Errorf("EnrollTotp qr_code_svg is no SVG: %.80q", started.GetQrCodeSvg())
	}
	if left := time.Until(started.GetExpiresAt().AsTime()); left <= 0 || left > 11*time.Minute {
		t.Errorf("the enrolment lapses in %v", left)
	}

	confirmed, err := c.TwoFactor.ConfirmTotp(ctx, &keyportv1.ConfirmTotpRequest{Code: totp(t, started.GetSecret(), time.Now())})
	if err != nil {
		t.Fatalf("ConfirmTotp: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	codes := confirmed.GetBackupCodes()
	if len(codes) != 10 {
		t.Fatalf("ConfirmTotp answered %d backup codes, want 10", len(codes))
	}
	backupCode := regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{4}){3}$`)
	seen := map[string]bool{}
	for _, code := range codes {
		if !backupCode.MatchString(code) || seen[code] {
			t.Errorf("backup code %q: malformed or repeated", code)
		}
		seen[code] = true
	}
	if got := confirmed.GetSession().GetAssuranceLevel(); got != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("the confirming session is at %v, want AAL2", got)
	}
	return enrolled{email: email, token: up.GetSession().GetToken(), secret: started.GetSecret(), backupCodes: codes}
}

// challenged signs email in with the test password and returns the
// challenge it must answer.
func challenged(t *testing.T, c *keyport.Client, email string) *keyportv1.SignInChallenge {
	t.Helper()
	resp, err := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: email, Password: password})
	if err != nil {
		t.Fatalf("SignIn(%s): %v (reason %q)", email, err, keyport.ErrorReason(err))
	}
	challenge, ok := keyport.SignInChallenge(resp)
	if !ok {
		t.Fatalf("SignIn(%s): outcome %T, want a challenge", email, resp.GetOutcome())
	}
	if resp.GetSession() != nil {
		t.Errorf("SignIn(%s) answered a session with the challenge", email)
	}
	return challenge
}

func TestSignInChallenge(t *testing.T) {
	challenge := &keyportv1.SignInChallenge{Challenge: "kpc_x", Factors: []keyportv1.SecondFactor{keyportv1.SecondFactor_SECOND_FACTOR_TOTP}}
	grant := &keyportv1.SessionGrant{Token: "kp_a.b"}
	for name, tc := range map[string]struct {
		resp keyport.ChallengeResponse
		want *keyportv1.SignInChallenge
	}{
		"SignIn challenge":            {&keyportv1.SignInResponse{Outcome: &keyportv1.SignInResponse_Challenge{Challenge: challenge}}, challenge},
		"FinishEmailSignIn challenge": {&keyportv1.FinishEmailSignInResponse{Challenge: challenge}, challenge},
		"FinishOAuth challenge":       {&keyportv1.FinishOAuthResponse{Outcome: &keyportv1.FinishOAuthResponse_Challenge{Challenge: challenge}}, challenge},
		"SignIn session":              {&keyportv1.SignInResponse{Outcome: &keyportv1.SignInResponse_Session{Session: grant}}, nil},
		"SignIn without outcome":      {&keyportv1.SignInResponse{}, nil},
		"FinishEmailSignIn session":   {&keyportv1.FinishEmailSignInResponse{Session: grant}, nil},
		"FinishOAuth linked":          {&keyportv1.FinishOAuthResponse{Outcome: &keyportv1.FinishOAuthResponse_Linked{Linked: &keyportv1.LinkedAccount{ProviderId: "github"}}}, nil},
		"nil *SignInResponse":         {(*keyportv1.SignInResponse)(nil), nil},
		"nil":                         {nil, nil},
	} {
		got, ok := keyport.SignInChallenge(tc.resp)
		if got != tc.want || ok != (tc.want != nil) {
			t.Errorf("%s: SignInChallenge = %v, %v; want %v, %v", name, got, ok, tc.want, tc.want != nil)
		}
	}

	totpReq := keyport.CompleteSignInWithTotp("kpc_y", "123 456")
	if totpReq.GetChallenge() != "kpc_y" || totpReq.GetTotpCode() != "123 456" || totpReq.GetBackupCode() != "" {
		t.Errorf("CompleteSignInWithTotp = %v", totpReq)
	}
	backupReq := keyport.CompleteSignInWithBackupCode("kpc_y", "abcd-efgh-ijkl-mnop")
	if backupReq.GetChallenge() != "kpc_y" || backupReq.GetBackupCode() != "abcd-efgh-ijkl-mnop" || backupReq.GetTotpCode() != "" {
		t.Errorf("CompleteSignInWithBackupCode = %v", backupReq)
	}
}

func TestSignInPastTheAuthenticatorApp(t *testing.T) {
	c := newClient(t)
	ada := enrollTotp(t, c)
	ctx := keyport.WithToken(t.Context(), ada.token)
	factors, err := c.TwoFactor.ListFactors(ctx, &keyportv1.ListFactorsRequest{})
	if err != nil {
		t.Fatalf("ListFactors: %v", err)
	}
	if !factors.GetTotpEnabled() || factors.GetBackupCodesLeft() != 10 {
		t.Errorf("ListFactors = %v, want the app on and 10 backup codes", factors)
	}

	challenge := challenged(t, c, ada.email)
	if !regexp.MustCompile(`^kpc_[A-Za-z0-9_-]{43}$`).MatchString(challenge.GetChallenge()) {
		t.Errorf("challenge %q", challenge.GetChallenge())
	}
	wantFactors := []keyportv1.SecondFactor{keyportv1.SecondFactor_SECOND_FACTOR_TOTP, keyportv1.SecondFactor_SECOND_FACTOR_BACKUP_CODE}
	if got := challenge.GetFactors(); len(got) != 2 || got[0] != wantFactors[0] || got[1] != wantFactors[1] {
		t.Errorf("challenge factors %v, want %v", got, wantFactors)
	}
	if !challenge.GetExpiresAt().AsTime().After(time.Now()) {
		t.Errorf("challenge expires_at %v is past", challenge.GetExpiresAt().AsTime())
	}

	_, err = c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithTotp(challenge.GetChallenge(), wrongTotp(t, ada.secret)))
	wantError(t, "CompleteSignIn with a wrong code", err, codes.Unauthenticated, keyport.ReasonSecondFactorInvalid)

	// The challenge still works after a wrong answer; the next step's code signs in.
	code := nextTotp(t, ada.secret)
	done, err := c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithTotp(challenge.GetChallenge(), code))
	if err != nil {
		t.Fatalf("CompleteSignIn with the app's code: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	grant := done.GetSession()
	if !tokenShape.MatchString(grant.GetToken()) || grant.GetUser().GetEmail() != ada.email {
		t.Errorf("CompleteSignIn session %q for %q", grant.GetToken(), grant.GetUser().GetEmail())
	}
	if got := grant.GetSession().GetAssuranceLevel(); got != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("CompleteSignIn session at %v, want AAL2", got)
	}
	if done.GetBackupCodesLeft() != 10 {
		t.Errorf("CompleteSignIn backup_codes_left %d, want 10", done.GetBackupCodesLeft())
	}
	looked, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: grant.GetToken()})
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if got := looked.GetSession().GetAssuranceLevel(); got != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("GetSession at %v, want AAL2", got)
	}

	_, err = c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithTotp(challenge.GetChallenge(), code))
	wantError(t, "CompleteSignIn with the used challenge", err, codes.InvalidArgument, keyport.ReasonSignInChallengeInvalid)
	_, err = c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithTotp(challenged(t, c, ada.email).GetChallenge(), code))
	wantError(t, "CompleteSignIn with a code of a step already used", err, codes.Unauthenticated, keyport.ReasonSecondFactorInvalid)

	_, err = c.TwoFactor.EnrollTotp(keyport.WithToken(t.Context(), grant.GetToken()), &keyportv1.EnrollTotpRequest{})
	wantError(t, "EnrollTotp with the app on", err, codes.AlreadyExists, keyport.ReasonSecondFactorAlreadyEnrolled)
}

func TestBackupCodesWorkOnce(t *testing.T) {
	c := newClient(t)
	bob := enrollTotp(t, c)
	backupCode := bob.backupCodes[0]

	done, err := c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithBackupCode(challenged(t, c, bob.email).GetChallenge(), backupCode))
	if err != nil {
		t.Fatalf("CompleteSignIn with a backup code: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if got := done.GetSession().GetSession().GetAssuranceLevel(); got != keyportv1.AssuranceLevel_ASSURANCE_LEVEL_AAL2 {
		t.Errorf("the backup code's session at %v, want AAL2", got)
	}
	if done.GetBackupCodesLeft() != 9 {
		t.Errorf("backup_codes_left %d, want 9", done.GetBackupCodesLeft())
	}

	_, err = c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithBackupCode(challenged(t, c, bob.email).GetChallenge(), backupCode))
	wantError(t, "CompleteSignIn with a used backup code", err, codes.Unauthenticated, keyport.ReasonSecondFactorInvalid)

	// Another one, typed in capitals with spaces.
	typed := strings.ReplaceAll(strings.ToUpper(bob.backupCodes[1]), "-", " ")
	if _, err := c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithBackupCode(challenged(t, c, bob.email).GetChallenge(), typed)); err != nil {
		t.Errorf("CompleteSignIn with %q: %v (reason %q)", typed, err, keyport.ErrorReason(err))
	}
	factors, err := c.TwoFactor.ListFactors(keyport.WithToken(t.Context(), bob.token), &keyportv1.ListFactorsRequest{})
	if err != nil {
		t.Fatalf("ListFactors: %v", err)
	}
	if factors.GetBackupCodesLeft() != 8 {
		t.Errorf("ListFactors backup_codes_left %d, want 8", factors.GetBackupCodesLeft())
	}
}

func TestUnknownSignInChallenge(t *testing.T) {
	c := newClient(t)
	for _, challenge := range []string{unknownChallenge, "", "kpc_short"} {
		_, err := c.Sessions.CompleteSignIn(t.Context(), keyport.CompleteSignInWithTotp(challenge, "123456"))
		wantError(t, "CompleteSignIn with challenge "+challenge, err, codes.InvalidArgument, keyport.ReasonSignInChallengeInvalid)
	}
}
