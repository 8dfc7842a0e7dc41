//! Generated Rust code for the `keyport.v1` gRPC API.
//!
//! The types, clients and servers come from `proto/keyport/v1/*.proto` at
//! build time; see those files for the meaning of every message, field and
//! RPC. The only hand-written code is [`reason`], which spells the generated
//! [`v1::ErrorReason`] the way it travels in `google.rpc.ErrorInfo`.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The `keyport.v1` package: messages, `*_client` and `*_server` modules.
pub mod v1 {
    tonic::include_proto!("keyport.v1");
}

/// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keyport_descriptor");

#[warn(missing_docs, clippy::all)]
pub mod reason;
