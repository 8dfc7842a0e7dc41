module github.com/keyport/keyport/clients/go

go 1.26.0

require (
	github.com/MicahParks/jwkset v0.11.4
	github.com/descope/virtualwebauthn v1.0.3
	github.com/golang-jwt/jwt/v5 v5.3.1
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261110000943-09e21b237f2c
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/fxamacker/cbor/v2 v2.7.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	golang.org/x/time v0.9.0 // indirect
)
