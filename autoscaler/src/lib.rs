//! Plimsoll autoscaler: the policy engine, the control loop and the command line of the `plimsoll` binary.

pub mod cli;
pub mod control;
pub mod nodes;
pub mod policy;
pub mod simulate;
