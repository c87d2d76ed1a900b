//! wasmrtc end-to-end tests: one binary, one module per area.

mod api;
mod attacks;
mod browser;
mod handlers;
mod hostile;
mod ice;
mod languages;
mod loadgen;
mod loading;
mod outbound;
mod session;
mod shutdown;
mod tenancy;
mod turns;
mod webrtc;
mod websocket;
