//! Host bindings generated from `wit/handler.wit`.
//!
//! The world is `turn-taking-component` (the handler world plus the optional `turns`
//! export); the host looks each exported interface up on its own, so a component
//! without `turns` — every component built against 0.1.0 — still links.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "turn-taking-component",
    imports: { default: trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub(crate) use exports::wasmrtc::handler::handler::{
    Guest as HandlerExports, GuestIndices as HandlerIndices,
};
pub(crate) use exports::wasmrtc::handler::turns::{
    Guest as TurnsExports, GuestIndices as TurnsIndices,
};
