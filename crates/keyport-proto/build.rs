//! Generates the keyport.v1 Rust code and its file descriptor set.
//!
//! protoc comes from `protoc-bin-vendored`, so building needs no system protoc.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it is compiled: a script built
    // for another checkout sharing the target directory must not read that
    // checkout's files.
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    // Every file of the package: a new one needs no edit here.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(proto_root.join("keyport/v1"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    // Sorted, so the descriptor set does not depend on the directory's order.
    files.sort();

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // tonic-prost-build finds protoc through these variables; a build script
    // runs no other thread that could read the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        env::set_var("PROTOC", protoc);
        env::set_var("PROTOC_INCLUDE", include);
    }

    let descriptor = PathBuf::from(env::var("OUT_DIR")?).join("keyport_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_protos(&files, std::slice::from_ref(&proto_root))?;
    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
