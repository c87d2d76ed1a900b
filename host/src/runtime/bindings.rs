//! Host bindings generated from `wit/handler.wit`.
//!
//! The world is `conversational-component` (the handler world plus the optional
//! `turns` and `replies` exports); the host looks each exported interface up on its
//! own, so a component without `turns` (0.1.0) or without `replies` (0.1.1) still links.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "conversational-component",
    imports: { default: trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub(crate) use exports::wasmrtc::handler::handler::{
    Guest as HandlerExports, GuestIndices as HandlerIndices,
};
pub(crate) use exports::wasmrtc::handler::replies::{
    Guest as RepliesExports, GuestIndices as RepliesIndices, ReplyChunk,
};
pub(crate) use exports::wasmrtc::handler::turns::{
    Guest as TurnsExports, GuestIndices as TurnsIndices,
};
