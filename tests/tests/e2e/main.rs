//! wasmrtc end-to-end tests: one binary, one module per area.

mod api;
mod attacks;
mod authoring;
mod browser;
mod dev;
mod handlers;
mod hostile;
mod ice;
mod languages;
mod loadgen;
mod loading;
mod outbound;
mod outbound_api;
mod run;
mod session;
mod shutdown;
mod tenancy;
mod turns;
mod tutorial;
mod uploads;
mod webrtc;
mod websocket;
