//! Bunker's operations layer, between the command line and the engine:
//! the config file (`bunker.toml`) with its repositories and plans, and the
//! schedules that say when a plan runs.

pub mod config;
pub mod schedule;

pub use config::{Config, ConfigError, DrillConfig, PlanConfig, RepositoryConfig, Retention};
pub use schedule::{Interval, Schedule};
