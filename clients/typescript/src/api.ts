/**
 * Everything both entry points (`@keyport/client` for Node and
 * `@keyport/client/web` for browsers) export besides `createKeyportClient`.
 *
 * @packageDocumentation
 */

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
  type KeyportClient,
  keyportClientFor,
} from "./common.js";
export {
  errorInfo,
  ErrorReason,
  errorReason,
  fieldViolations,
  KEYPORT_ERROR_DOMAIN,
} from "./errors.js";

// The generated API of keyport.v1: message types, their schemas (for
// `create`, `toJson`, ...) and the service descriptors.
export * from "./gen/keyport/v1/session_pb.js";
export * from "./gen/keyport/v1/session_service_pb.js";
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

// From Connect, so that callers need not import it for the common cases.
export { type CallOptions, Code, ConnectError } from "@connectrpc/connect";
