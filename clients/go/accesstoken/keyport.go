package accesstoken

import (
	"context"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// FromClient fetches the key set with client's SessionService.GetJwks, for
// [Config.Fetch]: the same document as /.well-known/jwks.json, over the
// connection (and TLS) the client already has.
func FromClient(client *keyport.Client) FetchFunc {
	return func(ctx context.Context) ([]byte, error) {
		resp, err := client.Sessions.GetJwks(ctx, &keyportv1.GetJwksRequest{})
		if err != nil {
			return nil, err
		}
		return []byte(resp.GetJwks()), nil
	}
}
