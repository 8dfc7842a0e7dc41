/**
 * A tiny Keyport-free gRPC service for the interceptor tests,
 * `example.v1.GreeterService/SayHello`, described in code (no generator),
 * with an implementation for Connect (`connectNodeAdapter`) and one for
 * `@grpc/grpc-js`, each behind Keyport's interceptor.
 */


import type { Http2Session } from "node:http2";
import type { AddressInfo } from "node:net";

import { create, createFileRegistry, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import type { GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";

// The example serves through the built package, so its context key is the package's.
import { keyportPrincipal } from "@keyport/client";

import type { KeyportGuard } from "../../src/index.js";
import { keyportServerInterceptor, principalIdsOf } from "../../src/grpc-js.js";
import { serveAuthenticated } from "../../examples/grpc-service.js";

/** `example.v1.SayHelloRequest`. */
export type SayHelloRequest = Message<"example.v1.SayHelloRequest"> & { name: string };
/** `example.v1.SayHelloResponse`. */
export type SayHelloResponse = Message<"example.v1.SayHelloResponse"> & { message: string };

const text = (name: string) => ({
  name,
  number: 1,
  type: FieldDescriptorProto_Type.STRING,
  label: FieldDescriptorProto_Label.OPTIONAL,
  jsonName: name,
});
const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "example/v1/greeter.proto",
    package: "example.v1",
    syntax: "proto3",
    messageType: [
      { name: "SayHelloRequest", field: [text("name")] },
      { name: "SayHelloResponse", field: [text("message")] },
    ],
    service: [
      {
        name: "GreeterService",
        method: [{ name: "SayHello", inputType: ".example.v1.SayHelloRequest", outputType: ".example.v1.SayHelloResponse" }],
      },
    ],
  }),
  () => undefined,
);

/** The request schema. */
export const SayHelloRequestSchema = registry.getMessage("example.v1.SayHelloRequest") as GenMessage<SayHelloRequest>;
/** The response schema. */
export const SayHelloResponseSchema = registry.getMessage("example.v1.SayHelloResponse") as GenMessage<SayHelloResponse>;
/** The service. */
export const GreeterService = registry.getService("example.v1.GreeterService") as GenService<{
  sayHello: { methodKind: "unary"; input: typeof SayHelloRequestSchema; output: typeof SayHelloResponseSchema };
}>;

/** A running greeter. */
export interface Greeter {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  close(): Promise<void>;
}

/** The greeting both implementations answer: who asked, as Keyport said. */
export function greeting(name: string, userId: string): string {
  return `hello ${name}, user ${userId}`;
}

/** The greeter on Connect, behind `keyportInterceptor` (examples/grpc-service.ts). */
export async function startConnectGreeter(guard: KeyportGuard, permissions: string[] = []): Promise<Greeter> {
  const routes = (router: ConnectRouter): void => {
    router.service(GreeterService, {
      sayHello(request, context) {
        const principal = context.values.get(keyportPrincipal);
        if (principal === undefined) throw new Error("the interceptor did not run");
        return { message: greeting(request.name, principal.user.id) };
      },
    });
  };
  const server = serveAuthenticated(guard, routes, permissions, 0);
  // Clients keep their HTTP/2 connection open; closing ends them.
  const sessions = new Set<Http2Session>();
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.once("listening", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      }),
  };
}

/** The greeter on `@grpc/grpc-js`, behind `keyportServerInterceptor`. */
export async function startGrpcJsGreeter(guard: KeyportGuard, permissions: string[] = []): Promise<Greeter> {
  const server = new grpc.Server({ interceptors: [keyportServerInterceptor(grpc, guard, { permissions })] });
  const definition: grpc.ServiceDefinition = {
    sayHello: {
      path: "/example.v1.GreeterService/SayHello",
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: SayHelloRequest) => Buffer.from(toBinary(SayHelloRequestSchema, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(SayHelloRequestSchema, bytes),
      responseSerialize: (message: SayHelloResponse) => Buffer.from(toBinary(SayHelloResponseSchema, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(SayHelloResponseSchema, bytes),
    },
  };
  server.addService(definition, {
    sayHello(
      call: grpc.ServerUnaryCall<SayHelloRequest, SayHelloResponse>,
      callback: grpc.sendUnaryData<SayHelloResponse>,
    ) {
      const ids = principalIdsOf(call.metadata);
      if (ids === undefined) {
        callback({ code: grpc.status.INTERNAL, details: "the interceptor did not run" });
        return;
      }
      callback(null, create(SayHelloResponseSchema, { message: greeting(call.request.name, ids.userId) }));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => server.forceShutdown(),
  };
}


