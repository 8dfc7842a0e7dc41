package keyport_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
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
