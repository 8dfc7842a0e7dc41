//! Generated Rust code for the `keyport.v1` gRPC API.
//!
//! Nothing here is written by hand: the types, clients and servers come from
//! `proto/keyport/v1/*.proto` at build time. See those files for the meaning
//! of every message, field and RPC.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The `keyport.v1` package: messages, `*_client` and `*_server` modules.
pub mod v1 {
    tonic::include_proto!("keyport.v1");
}

/// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keyport_descriptor");
