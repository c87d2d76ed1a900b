//! Host bindings generated from `wit/handler.wit`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler-component",
    imports: { default: trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});
