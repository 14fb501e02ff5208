//! Support for tests of Bunker and of code built on it (feature `testing`):
//! the test servers started by `scripts/test-services`, a wrapper that
//! injects storage faults into any backend, a loopback HTTP proxy that
//! counts requests and injects network faults, and the conformance suite
//! every backend must pass.

mod conformance;
mod faulty;
mod proxy;
mod services;

pub use conformance::{conformance, Gaps};
pub use faulty::{Fault, FaultyBackend};
pub use proxy::{Counts, Faults, Proxy};
pub use services::{Service, TestServices};
