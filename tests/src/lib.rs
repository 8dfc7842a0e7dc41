//! Test kit for Keyport's end-to-end tests: real parts started by the tests.

pub mod pg;
