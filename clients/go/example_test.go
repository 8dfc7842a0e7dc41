package keyport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	"github.com/keyport/keyport/clients/go/accesstoken"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Signs a user in, then calls a user-scoped RPC with the session token.
// (Compiled by `go test`, not run: it needs a Keyport server.)
func Example() {
	client, err := keyport.Dial("localhost:50051", keyport.WithInsecure(), keyport.WithTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	resp, err := client.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: "ada@example.com", Password: "correct horse battery staple"})
	if keyport.ErrorReason(err) == keyport.ReasonInvalidCredentials {
		log.Fatal("wrong email or password")
	} else if err != nil {
		log.Fatal(err)
	}
	token := resp.GetSession().GetToken() // keep it, e.g. in a cookie

	me, err := client.Users.GetCurrentUser(keyport.WithToken(ctx, token), &keyportv1.GetCurrentUserRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", me.GetUser().GetEmail())
}

// Dials a Keyport server that requires mutual TLS with a private CA.
func ExampleDial_mutualTLS() {
	client, err := keyport.Dial("keyport.internal:50051",
		keyport.WithCAFile("/etc/keyport/ca.pem"),
		keyport.WithClientCertFiles("/etc/myapp/client.pem", "/etc/myapp/client-key.pem"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}

// Validates a session token, as web middleware does on every request.
func ExampleErrorReason() {
	var client *keyport.Client // from keyport.Dial
	ctx := context.Background()

	resp, err := client.Sessions.GetSession(ctx, &keyportv1.GetSessionRequest{Token: "kp_..."})
	switch keyport.ErrorReason(err) {
	case "":
		if err != nil {
			log.Printf("keyport unreachable: %v", err) // no reason: a transport error or a deadline
			return
		}
		fmt.Println("user", resp.GetUser().GetId())
	case keyport.ReasonUnauthenticated, keyport.ReasonSessionExpired:
		fmt.Println("please sign in again")
	default:
		log.Printf("keyport: %v", err)
	}
}

// Reads the token of a link Keyport mailed, as the page the link opens
// does with its request URL.
func ExampleTokenFromLink() {
	token, ok := keyport.TokenFromLink("https://app.example.com/reset-password?token=kpm_k_387B_GJoRQOmranH8bunozMII7OgjxHEu1kvD2yM8")
	fmt.Println(token, ok)
	_, ok = keyport.TokenFromLink("https://app.example.com/reset-password")
	fmt.Println(ok)
	// Output:
	// kpm_k_387B_GJoRQOmranH8bunozMII7OgjxHEu1kvD2yM8 true
	// false
}

// The two pages of a forgotten-password flow in a web app. (Compiled by
// `go test`, not run: it needs a Keyport server with mail.)
func Example_passwordReset() {
	var client *keyport.Client // from keyport.Dial

	// The "forgot password" form: the answer is the same whether or not an account has the address.
	http.HandleFunc("POST /forgot-password", func(w http.ResponseWriter, r *http.Request) {
		_, err := client.Users.RequestPasswordReset(r.Context(), &keyportv1.RequestPasswordResetRequest{Email: r.FormValue("email")})
		if keyport.ErrorReason(err) == keyport.ReasonInvalidArgument {
			http.Error(w, "Please enter your email address.", http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "If an account has this address, we mailed it a link.")
	})

	// The mailed link opens /reset-password?token=kpm_...; its form posts the new password there.
	http.HandleFunc("POST /reset-password", func(w http.ResponseWriter, r *http.Request) {
		token, _ := keyport.TokenFromLink(r.URL.String()) // a missing token is refused like a wrong one
		_, err := client.Users.ResetPassword(r.Context(), &keyportv1.ResetPasswordRequest{Token: token, NewPassword: r.FormValue("password")})
		switch keyport.ErrorReason(err) {
		case "":
			if err != nil {
				http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
				return
			}
			http.Redirect(w, r, "/sign-in", http.StatusSeeOther) // every session ended; nobody is signed in
		case keyport.ReasonEmailTokenInvalid:
			http.Error(w, "This link was used, replaced or has expired: ask for a new one.", http.StatusBadRequest)
		default: // WEAK_PASSWORD, PASSWORD_TOO_COMMON, ...: the link still works
			http.Error(w, "Please choose another password.", http.StatusBadRequest)
		}
	})
}

// Email sign-in in a web app: the binding stays in the browser that asked,
// and the mailed code or link finishes the sign-in there only. (Compiled by
// `go test`, not run.)
func Example_emailSignIn() {
	var client *keyport.Client // from keyport.Dial

	http.HandleFunc("POST /sign-in/email/start", func(w http.ResponseWriter, r *http.Request) {
		start, err := client.Sessions.StartEmailSignIn(r.Context(), &keyportv1.StartEmailSignInRequest{Email: r.FormValue("email")})
		if err != nil {
			http.Error(w, "Please check the address and try again.", http.StatusBadRequest)
			return
		}
		http.SetCookie(w, keyport.EmailSignInCookie(start)) // HttpOnly, Secure, SameSite=Lax
		fmt.Fprintln(w, "Enter the code we mailed you, or open the link in this browser.")
	})

	// POST with the typed code, or GET from the mailed link (?token=kpm_...).
	http.HandleFunc("/sign-in/email", func(w http.ResponseWriter, r *http.Request) {
		binding := keyport.EmailSignInBinding(r)
		req := keyport.EmailSignInWithCode(binding, r.PostFormValue("code"))
		if token, ok := keyport.TokenFromLink(r.URL.String()); ok {
			req = keyport.EmailSignInWithToken(binding, token)
		}
		resp, err := client.Sessions.FinishEmailSignIn(r.Context(), req)
		if keyport.ErrorReason(err) == keyport.ReasonEmailTokenInvalid {
			http.Error(w, "This code or link does not work (here): start again in this browser.", http.StatusForbidden)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		http.SetCookie(w, keyport.ClearEmailSignInCookie())
		if challenge, ok := keyport.SignInChallenge(resp); ok {
			// An authenticator app is on: no session yet. Keep the challenge in this browser, and ask for the code.
			http.SetCookie(w, keyport.ChallengeCookie(challenge)) // until the challenge expires
			http.Redirect(w, r, "/sign-in/second-factor", http.StatusSeeOther)
			return
		}
		// Keep resp.GetSession().GetToken() in your session cookie, as after SignIn.
		fmt.Fprintln(w, "Signed in as", resp.GetUser().GetEmail())
	})
}

// Signs in a user who may have a second factor: when SignIn answers a
// challenge instead of a session, the code from their authenticator app
// (or a backup code) finishes the sign-in. (Compiled by `go test`, not
// run.)
func ExampleSignInChallenge() {
	var client *keyport.Client // from keyport.Dial
	ctx := context.Background()

	resp, err := client.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: "ada@example.com", Password: "correct horse battery staple"})
	if err != nil {
		log.Fatal(err)
	}
	grant := resp.GetSession() // no second factor: an AAL1 session
	if challenge, ok := keyport.SignInChallenge(resp); ok {
		// A web app sets keyport.ChallengeCookie(challenge); its code page reads keyport.ChallengeFromCookie(r).
		code := "123456" // what the user typed; keyport.CompleteSignInWithBackupCode for a backup code
		done, err := client.Sessions.CompleteSignIn(ctx, keyport.CompleteSignInWithTotp(challenge.GetChallenge(), code))
		switch keyport.ErrorReason(err) {
		case "":
			if err != nil {
				log.Fatal(err)
			}
		case keyport.ReasonSecondFactorInvalid:
			log.Fatal("wrong code: ask again (a challenge takes 5 answers)")
		case keyport.ReasonSignInChallengeInvalid:
			log.Fatal("the challenge expired or was used: sign in again")
		default:
			log.Fatal(err)
		}
		grant = done.GetSession() // an AAL2 session
	}
	fmt.Println("signed in at", grant.GetSession().GetAssuranceLevel())
}

// Passkeys in a web app: each ceremony goes start (the options, JSON for
// the browser) → navigator.credentials.create or .get → finish (the
// answer's toJSON()). A passkey sign-in keeps its ceremony in a cookie of
// the browser; registration and step-up ceremonies are bound to the
// session, so the page keeps them. (Compiled by `go test`, not run.)
func Example_passkeys() {
	var client *keyport.Client           // from keyport.Dial
	var token func(*http.Request) string // the signed-in user's session token, from your session cookie

	http.HandleFunc("POST /sign-in/passkey/start", func(w http.ResponseWriter, r *http.Request) {
		start, err := client.Sessions.StartPasskeySignIn(r.Context(), &keyportv1.StartPasskeySignInRequest{})
		if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		http.SetCookie(w, keyport.PasskeyCeremonyCookie(start)) // HttpOnly, Secure, SameSite=Lax, 5 minutes
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, start.GetOptions()) // for navigator.credentials.get
	})

	// The body is the credential's toJSON(), from navigator.credentials.get.
	http.HandleFunc("POST /sign-in/passkey", func(w http.ResponseWriter, r *http.Request) {
		credential, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		http.SetCookie(w, keyport.ClearPasskeyCeremonyCookie()) // used up, right or wrong
		resp, err := client.Sessions.FinishPasskeySignIn(r.Context(), &keyportv1.FinishPasskeySignInRequest{
			Ceremony:   keyport.PasskeyCeremonyFromCookie(r), // "" in another browser
			Credential: string(credential),
		})
		if keyport.ErrorReason(err) == keyport.ReasonPasskeyInvalid {
			http.Error(w, "That passkey did not work: try again.", http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		// An AAL2 session, no password asked: keep resp.GetSession().GetToken() in your session cookie.
		fmt.Fprintln(w, "Signed in as", resp.GetSession().GetUser().GetEmail())
	})

	// Signed in: registration (STEP_UP_REQUIRED for a user with a second factor and no recent step-up).
	http.HandleFunc("POST /passkeys/start", func(w http.ResponseWriter, r *http.Request) {
		start, err := client.Passkeys.StartPasskeyRegistration(keyport.WithToken(r.Context(), token(r)), &keyportv1.StartPasskeyRegistrationRequest{})
		if err != nil {
			http.Error(w, keyport.ErrorReason(err), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json") // options: for navigator.credentials.create
		json.NewEncoder(w).Encode(map[string]any{"ceremony": start.GetCeremony(), "options": json.RawMessage(start.GetOptions())})
	})
	http.HandleFunc("POST /passkeys", func(w http.ResponseWriter, r *http.Request) {
		_, err := client.Passkeys.FinishPasskeyRegistration(keyport.WithToken(r.Context(), token(r)), &keyportv1.FinishPasskeyRegistrationRequest{
			Ceremony:   r.PostFormValue("ceremony"),
			Credential: r.PostFormValue("credential"),
			Name:       r.PostFormValue("name"), // "": named "Passkey"
		})
		if keyport.ErrorReason(err) == keyport.ReasonPasskeyInvalid {
			http.Error(w, "That passkey did not work: start again.", http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Passkey added.") // the user's other sessions ended
	})

	// Signed in: a step-up before a sensitive call (SECOND_FACTOR_NOT_ENROLLED for a user without a passkey).
	http.HandleFunc("POST /step-up/passkey/start", func(w http.ResponseWriter, r *http.Request) {
		start, err := client.TwoFactor.StartPasskeyStepUp(keyport.WithToken(r.Context(), token(r)), &keyportv1.StartPasskeyStepUpRequest{})
		if err != nil {
			http.Error(w, keyport.ErrorReason(err), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json") // options: for navigator.credentials.get
		json.NewEncoder(w).Encode(map[string]any{"ceremony": start.GetCeremony(), "options": json.RawMessage(start.GetOptions())})
	})
	http.HandleFunc("POST /step-up/passkey", func(w http.ResponseWriter, r *http.Request) {
		answer := &keyportv1.PasskeyAssertion{Ceremony: r.PostFormValue("ceremony"), Credential: r.PostFormValue("credential")}
		_, err := client.TwoFactor.StepUp(keyport.WithToken(r.Context(), token(r)), &keyportv1.StepUpRequest{
			Answer: &keyportv1.StepUpRequest_Passkey{Passkey: answer},
		})
		if keyport.ErrorReason(err) == keyport.ReasonPasskeyInvalid {
			http.Error(w, "That passkey did not work: start again.", http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Confirmed: the session is AAL2 again.")
	})
}

// Guards an app's handlers with Authorize: a request goes on only when the
// holder of its session token has every permission it needs. (Compiled by
// `go test`, not run.)
func Example_authorization() {
	var client *keyport.Client           // from keyport.Dial
	var token func(*http.Request) string // the request's session token, from your session cookie

	require := func(permissions []string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			resp, err := client.Authorization.Authorize(r.Context(), &keyportv1.AuthorizeRequest{Token: token(r), Permissions: permissions})
			switch reason := keyport.ErrorReason(err); {
			case reason == keyport.ReasonUnauthenticated || reason == keyport.ReasonSessionExpired:
				http.Error(w, "Please sign in.", http.StatusUnauthorized)
			case err != nil: // ReasonPermissionUnknown: a name outside the server's catalogue, a bug in the app
				http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			case !resp.GetAllowed(): // resp.GetDecisions() says which permission is missing
				http.Error(w, "Not allowed.", http.StatusForbidden)
			default:
				next(w, r) // resp.GetUser() is who asks, with their roles
			}
		}
	}

	http.HandleFunc("GET /posts", require([]string{"posts:read"}, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "The posts.")
	}))
	http.HandleFunc("POST /posts", require([]string{"posts:write"}, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Posted.")
	}))
}

// An admin page's handlers: the banned users, every page of them, and a
// ban. The admin's own session token goes on each call's context, as for
// user-scoped RPCs. (Compiled by `go test`, not run.)
func Example_administration() {
	var client *keyport.Client           // from keyport.Dial
	var token func(*http.Request) string // the admin's session token, from your session cookie

	http.HandleFunc("GET /admin/banned", func(w http.ResponseWriter, r *http.Request) {
		ctx := keyport.WithToken(r.Context(), token(r))
		req := &keyportv1.ListUsersRequest{Ban: keyportv1.BanFilter_BAN_FILTER_BANNED, PageSize: 200}
		for managed, err := range keyport.ListAllUsers(ctx, client.Admin, req) { // newest first, page after page
			if err != nil { // ReasonPermissionDenied: the caller's roles do not grant users:read
				http.Error(w, "Admins only.", http.StatusForbidden)
				return
			}
			fmt.Fprintf(w, "%s: %s\n", managed.GetUser().GetEmail(), managed.GetBan().GetReason())
		}
	})

	// Every session of the user ends at once, and their sign-ins answer ReasonUserBanned.
	http.HandleFunc("POST /admin/users/{id}/ban", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Admin.BanUser(keyport.WithToken(r.Context(), token(r)), &keyportv1.BanUserRequest{
			UserId: r.PathValue("id"),
			Reason: r.FormValue("reason"), // no ExpiresAt: until UnbanUser
		})
		switch keyport.ErrorReason(err) {
		case "":
			if err != nil {
				http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "Banned", resp.GetUser().GetUser().GetEmail())
		case keyport.ReasonUserNotFound:
			http.Error(w, "No such user.", http.StatusNotFound)
		case keyport.ReasonInvalidArgument: // no reason, one over 512 characters, or the admin's own id
			http.Error(w, "Give a reason; you cannot ban yourself.", http.StatusBadRequest)
		case keyport.ReasonPermissionDenied: // the caller's roles do not grant users:write
			http.Error(w, "Admins only.", http.StatusForbidden)
		default: // ReasonUnauthenticated, ReasonSessionExpired
			http.Error(w, "Please sign in again.", http.StatusUnauthorized)
		}
	})
}

// API keys: a settings page that makes one (its secret is shown once), an
// API route that machine callers reach with one, its rotation, and an
// admin's key for a service account. (Compiled by `go test`, not run.)
func Example_apiKeys() {
	var client *keyport.Client           // from keyport.Dial
	var token func(*http.Request) string // the signed-in user's session token, from your session cookie

	http.HandleFunc("POST /settings/api-keys", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.APIKeys.CreateApiKey(keyport.WithToken(r.Context(), token(r)), &keyportv1.CreateApiKeyRequest{
			Name:   r.FormValue("name"),
			Scopes: r.Form["scope"], // e.g. posts:read: catalogue permissions the user's roles grant
		})
		switch keyport.ErrorReason(err) {
		case "":
			if err != nil {
				http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
				return
			}
			// Shown this once: Keyport keeps only its hash, and ListApiKeys never shows it.
			fmt.Fprintln(w, "Your new key; copy it now:", resp.GetSecret())
		case keyport.ReasonInvalidArgument, keyport.ReasonPermissionUnknown: // no name, no scope, one the user lacks
			http.Error(w, "Name the key and choose what it may do.", http.StatusBadRequest)
		case keyport.ReasonReauthenticationRequired, keyport.ReasonStepUpRequired: // a new credential needs a recent sign-in
			http.Error(w, "Please sign in again first.", http.StatusForbidden)
		default: // ReasonUnauthenticated, ReasonSessionExpired
			http.Error(w, "Please sign in.", http.StatusUnauthorized)
		}
	})

	// Machine callers send "Authorization: Bearer kpa_...".
	http.HandleFunc("GET /api/posts", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !keyport.IsAPIKey(key) {
			http.Error(w, "Send an API key.", http.StatusUnauthorized)
			return
		}
		resp, err := client.Authorization.Authorize(r.Context(), &keyportv1.AuthorizeRequest{Token: key, Permissions: []string{"posts:read"}})
		switch reason := keyport.ErrorReason(err); {
		case reason == keyport.ReasonUnauthenticated || reason == keyport.ReasonAPIKeyExpired:
			http.Error(w, "Unknown, revoked or expired key.", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
		case !resp.GetAllowed(): // outside the key's scopes, or no longer granted to its owner
			http.Error(w, "The key does not allow this.", http.StatusForbidden)
		default: // resp.GetUser() for a user's key, resp.GetServiceAccount() for a service account's
			fmt.Fprintf(w, "The posts, for key %s.\n", resp.GetApiKey().GetName())
		}
	})

	// The old key keeps working for a day, while deployments move to the new one.
	http.HandleFunc("POST /settings/api-keys/{id}/rotate", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.APIKeys.RotateApiKey(keyport.WithToken(r.Context(), token(r)), &keyportv1.RotateApiKeyRequest{
			ApiKeyId: r.PathValue("id"),
			Grace:    durationpb.New(24 * time.Hour),
		})
		if keyport.ErrorReason(err) == keyport.ReasonAPIKeyNotFound { // not one of the user's keys
			http.Error(w, "No such key.", http.StatusNotFound)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Your new key; copy it now:", resp.GetSecret())
	})

	// An admin (users:write) makes a service account for CI and a key of it that may read users.
	http.HandleFunc("POST /admin/service-accounts", func(w http.ResponseWriter, r *http.Request) {
		ctx := keyport.WithToken(r.Context(), token(r))
		account, err := client.Admin.CreateServiceAccount(ctx, &keyportv1.CreateServiceAccountRequest{
			Name: r.FormValue("name"), Description: "CI", Roles: []string{"auditor"},
		})
		if err != nil { // ReasonPermissionDenied, ReasonInvalidArgument (a malformed or taken name)
			http.Error(w, "Could not create the service account.", http.StatusBadRequest)
			return
		}
		key, err := client.APIKeys.CreateApiKey(ctx, &keyportv1.CreateApiKeyRequest{
			Name: "ci", Scopes: []string{"users:read"}, ServiceAccountId: account.GetServiceAccount().GetId(),
		})
		if err != nil {
			http.Error(w, "Could not create the key.", http.StatusBadRequest)
			return
		}
		// client.Admin.ListUsers works with keyport.WithToken(ctx, key.GetSecret()); DeleteServiceAccount revokes it.
		fmt.Fprintln(w, "The CI key; copy it now:", key.GetSecret())
	})
}

// Organizations: a team created (its creator its owner), an invitation, its
// acceptance, and a team's page authorized in the team. (Compiled by `go
// test`, not run.)
func Example_organizations() {
	var client *keyport.Client           // from keyport.Dial
	var token func(*http.Request) string // the signed-in user's session token, from your session cookie

	// The "New team" form: the caller becomes the organization's owner.
	http.HandleFunc("POST /teams", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Organizations.CreateOrganization(keyport.WithToken(r.Context(), token(r)), &keyportv1.CreateOrganizationRequest{
			Name: r.FormValue("name"),
			Slug: r.FormValue("slug"), // 1-64 of a-z 0-9 -
		})
		switch keyport.ErrorReason(err) {
		case "":
			if err != nil {
				http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
				return
			}
			http.Redirect(w, r, "/teams/"+resp.GetOrganization().GetId(), http.StatusSeeOther)
		case keyport.ReasonSlugTaken:
			http.Error(w, "That handle is taken: choose another.", http.StatusConflict)
		case keyport.ReasonInvalidArgument: // keyport.FieldViolations(err) says which field
			http.Error(w, "Give a name and a handle of a-z, 0-9 and -.", http.StatusBadRequest)
		default: // ReasonUnauthenticated, ReasonSessionExpired
			http.Error(w, "Please sign in.", http.StatusUnauthorized)
		}
	})

	// An owner or admin invites an address; mail the invitation's id to it.
	http.HandleFunc("POST /teams/{id}/invitations", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Organizations.CreateInvitation(keyport.WithToken(r.Context(), token(r)), &keyportv1.CreateInvitationRequest{
			OrganizationId: r.PathValue("id"), Email: r.FormValue("email"), Role: r.FormValue("role"),
		})
		switch keyport.ErrorReason(err) {
		case "":
			if err != nil {
				http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "Invited; their link is /invitations/"+resp.GetInvitation().GetId())
		case keyport.ReasonOrganizationNotFound: // unknown, or not one of the caller's
			http.Error(w, "No such team.", http.StatusNotFound)
		case keyport.ReasonPermissionDenied: // a member, or an admin inviting an admin
			http.Error(w, "You may not invite to this team.", http.StatusForbidden)
		default:
			http.Error(w, "Could not invite.", http.StatusBadRequest)
		}
	})

	// The invitation's link: it works once, for a user whose verified email is the invited address.
	http.HandleFunc("POST /invitations/{id}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Organizations.AcceptInvitation(keyport.WithToken(r.Context(), token(r)), &keyportv1.AcceptInvitationRequest{
			InvitationId: r.PathValue("id"),
		})
		if keyport.ErrorReason(err) == keyport.ReasonInvitationInvalid { // unknown, revoked, used, expired, another address
			http.Error(w, "This invitation no longer works: ask for a new one.", http.StatusGone)
			return
		} else if err != nil {
			http.Error(w, "Please try again later.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "Welcome to %s (%s).\n", resp.GetMembership().GetOrganization().GetName(), resp.GetMembership().GetRole())
	})

	// A team's pages: the user's own roles, or their role in the team, must grant the permission.
	http.HandleFunc("GET /teams/{id}/posts", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Authorization.Authorize(r.Context(), &keyportv1.AuthorizeRequest{
			Token: token(r), Permissions: []string{"posts:read"}, OrganizationId: r.PathValue("id"),
		})
		switch {
		case err != nil: // ReasonUnauthenticated, ReasonSessionExpired; ReasonInvalidArgument for a malformed id
			http.Error(w, "Please sign in.", http.StatusUnauthorized)
		case !resp.GetAllowed(): // a non-member has only their own roles: a deny, not an error
			http.Error(w, "Not allowed.", http.StatusForbidden)
		default:
			fmt.Fprintf(w, "The team's posts, for its %s.\n", resp.GetOrganizationRole())
		}
	})
}

// Guards a net/http app: the session cache follows Keyport's events, and
// the middleware lets through only requests with a valid session (bearer
// token or session cookie), the principal in their context.
// (Compiled by `go test`, not run: it needs a Keyport server.)
func ExampleGuard_Middleware() {
	client, err := keyport.Dial("localhost:50051", keyport.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	cache := keyport.NewSessionCache(context.Background(), client, keyport.CacheConfig{})
	defer cache.Close()
	guard := keyport.NewGuard(cache, keyport.GuardConfig{})

	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal, _ := keyport.PrincipalFrom(r.Context())
		fmt.Fprintln(w, "hello", principal.User.GetEmail())
	})
	mux := http.NewServeMux()
	mux.Handle("GET /me", guard.Middleware(me))                                   // 401 / 503 JSON otherwise
	mux.Handle("POST /posts", guard.RequirePermissions("posts:write")(me))        // 403 without it
	mux.Handle("GET /", guard.OptionalMiddleware(http.FileServer(http.Dir(".")))) // signed in or not
	log.Fatal(http.ListenAndServe(":8080", mux))
}

// Guards a gRPC service of yours (here the standard health service) by its
// callers' session tokens (authorization: Bearer metadata).
// (Compiled by `go test`, not run: it needs a Keyport server.)
func ExampleGuard_UnaryServerInterceptor() {
	client, err := keyport.Dial("localhost:50051", keyport.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	cache := keyport.NewSessionCache(context.Background(), client, keyport.CacheConfig{})
	defer cache.Close()
	guard := keyport.NewGuard(cache, keyport.GuardConfig{})

	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor("reports:read")),
		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor("reports:read")),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer()) // handlers call keyport.PrincipalFrom(ctx)
	lis, err := net.Listen("tcp", ":50052")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(lis))
}

// Verifies Keyport's JWT access tokens offline: a service that was handed
// one (Authorization: Bearer) checks it against Keyport's key set, with no
// call to Keyport per request.
// (Compiled by `go test`, not run: it needs a Keyport server.)
func Example_accessTokens() {
	client, err := keyport.Dial("localhost:50051", keyport.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()

	// Where the session lives (a web app): exchange it for a token for "orders".
	issued, err := client.Sessions.IssueAccessToken(ctx, &keyportv1.IssueAccessTokenRequest{Token: "kp_...", Audience: "orders"})
	if err != nil {
		log.Fatal(err)
	}

	// In the orders service: verify it.
	verifier, err := accesstoken.NewVerifier(accesstoken.Config{
		JWKSURL:  "http://localhost:50051/.well-known/jwks.json", // or Fetch: accesstoken.FromClient(client)
		Issuer:   "https://keyport.example.com",
		Audience: "orders",
	})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := verifier.Verify(ctx, issued.GetAccessToken())
	if errors.Is(err, accesstoken.ErrInvalid) || errors.Is(err, accesstoken.ErrUnknownKey) {
		log.Fatal("refused: ", err) // answer 401
	} else if err != nil {
		log.Fatal(err) // the key set is unavailable: answer 503
	}
	fmt.Println(claims.Subject, claims.SessionID, claims.Roles, claims.ExpiresAt)
}
