package keyport_test

import (
	"context"
	"fmt"
	"log"
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
