//! wasmrtc end-to-end tests: one binary, one module per area.

mod hostile;
mod loading;
mod handlers;
