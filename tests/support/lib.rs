//! Support for integration tests.
