//! The handler author's workflow, beside the data path: `wasmrtc new` writes a project
//! from a template shipped in the binary, `wasmrtc build` turns it into a component
//! with the project's language toolchain, `wasmrtc run` runs a component offline over
//! media files, and `wasmrtc dev` rebuilds and hot-swaps it on every save.

pub mod build;
pub mod dev;
pub mod new;
pub mod project;
pub mod run;
pub mod templates;
pub mod toolchain;
