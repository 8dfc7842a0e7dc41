/**
 * Everything both entry points (`@keyport/client` for Node and
 * `@keyport/client/web` for browsers) export besides `createKeyportClient`.
 *
 * @packageDocumentation
 */

export { listAllUsers } from "./admin.js";
export { API_KEY_PREFIX, isApiKey } from "./api-keys.js";
export {
  AUTHORIZATION_HEADER,
  bearer,
  sessionInterceptor,
  type TokenSource,
  withSession,
} from "./auth.js";
export {
  baseUrlOf,
  type CommonClientOptions,
  DEFAULT_TIMEOUT_MS,
  type KeyportClient,
  keyportClientFor,
} from "./common.js";
export {
  errorInfo,
  ErrorReason,
  errorReason,
  fieldViolations,
  isErrorReason,
  KEYPORT_ERROR_DOMAIN,
  retryDelay,
} from "./errors.js";
export {
  CHALLENGE_COOKIE_NAME,
  challengeCookie,
  challengeFromCookie,
  challengePasskeyOptionsFromCookie,
  clearChallengeCookie,
  signInChallenge,
} from "./factors.js";
export {
  clearEmailSignInCookie,
  EMAIL_SIGN_IN_COOKIE_NAME,
  emailSignInBinding,
  emailSignInCookie,
  tokenFromLink,
} from "./mail.js";
export {
  clearPasskeyCeremonyCookie,
  PASSKEY_CEREMONY_COOKIE_NAME,
  passkeyCeremonyCookie,
  passkeyCeremonyFromCookie,
} from "./passkeys.js";

// The generated API of keyport.v1: message types, their schemas (for
// `create`, `toJson`, ...) and the service descriptors.
export * from "./gen/keyport/v1/admin_service_pb.js";
export * from "./gen/keyport/v1/api_key_pb.js";
export * from "./gen/keyport/v1/api_key_service_pb.js";
export * from "./gen/keyport/v1/authorization_service_pb.js";
// `GetUser`'s linked accounts; the rest of OAuth's messages are not in the API yet.
export { type LinkedAccount, LinkedAccountSchema } from "./gen/keyport/v1/oauth_pb.js";
export * from "./gen/keyport/v1/organization_service_pb.js";
export * from "./gen/keyport/v1/passkey_service_pb.js";
export * from "./gen/keyport/v1/session_pb.js";
export * from "./gen/keyport/v1/session_service_pb.js";
export * from "./gen/keyport/v1/two_factor_service_pb.js";
export * from "./gen/keyport/v1/user_pb.js";
export * from "./gen/keyport/v1/user_service_pb.js";
// The error details Keyport sends.
export {
  type BadRequest,
  BadRequestSchema,
  type BadRequest_FieldViolation,
  BadRequest_FieldViolationSchema,
  type ErrorInfo,
  ErrorInfoSchema,
  type RetryInfo,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

// The protobuf-es helpers that work on the schemas above, from the copy of
// `@bufbuild/protobuf` this package uses: an app that imports them from here
// cannot end up mixing two copies (whose types do not match).
export {
  clone,
  create,
  equals,
  fromBinary,
  fromJson,
  fromJsonString,
  isMessage,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJson,
  toJsonString,
} from "@bufbuild/protobuf";

// From Connect, so that callers need not import it for the common cases.
export { type CallOptions, Code, ConnectError } from "@connectrpc/connect";
