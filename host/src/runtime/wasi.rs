//! The WASI surface a handler sees: exactly the interfaces in [`INTERFACES`], linked
//! one by one, and the check of a component's imports against them, made on the raw
//! bytes before anything is compiled.
//!
//! The WIT promises clocks and random and denies every other capability. The
//! language runtimes import more than that (Python's and JavaScript's import the
//! filesystem and the CLI streams, Python's every socket interface), so those are
//! linked too, inert: no preopened directory, no arguments, an empty stdin, an
//! environment holding only a stream's granted variables, every socket and name
//! lookup refused. `wasi:http` is linked but refused at load unless the stream has an
//! outbound grant (see [`super::outbound`]). Anything else is refused at load or
//! upload, naming the import.
//!
//! Random bytes are bounded per call ([`RANDOM_BYTES_PER_CALL`] by default): a guest
//! asking for more ends as `host-call-abuse` before the host generates any.

use wasmparser::{ComponentTypeRef, Parser, Payload};
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
use wasmtime_wasi::random::WasiRandomCtx;

use super::LoadError;
use super::state::StoreState;

/// Largest `get-random-bytes` (or `get-insecure-random-bytes`) one call may ask for,
/// by default.
pub const RANDOM_BYTES_PER_CALL: u64 = 64 << 10;

/// Host resources (streams, pollables, sockets, requests…) one instance may hold at
/// once, by default; creating one more traps as `host-call-abuse`.
pub const RESOURCES_PER_INSTANCE: usize = 10_000;

/// What the host does with an interface a handler imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Linked and working: clocks, random (bounded), the stream plumbing.
    Offered,
    /// Linked so that language runtimes load, with nothing behind it (no directory,
    /// no socket, no terminal) or refused on every call.
    Inert,
    /// Linked, but a component importing it loads only for a stream with an outbound grant.
    Granted,
}

/// Every WASI 0.2 interface a handler may import (`package/interface`, any 0.2.x),
/// with what it gets. Imports not listed here are refused at load and upload.
pub const INTERFACES: &[(&str, Surface)] = &[
    ("wasi:clocks/monotonic-clock", Surface::Offered),
    ("wasi:clocks/wall-clock", Surface::Offered),
    ("wasi:random/random", Surface::Offered),
    ("wasi:random/insecure", Surface::Offered),
    ("wasi:random/insecure-seed", Surface::Offered),
    ("wasi:io/error", Surface::Offered),
    ("wasi:io/poll", Surface::Offered),
    ("wasi:io/streams", Surface::Offered),
    ("wasi:cli/stdout", Surface::Offered),
    ("wasi:cli/stderr", Surface::Offered),
    ("wasi:cli/stdin", Surface::Inert),
    ("wasi:cli/environment", Surface::Inert),
    ("wasi:cli/exit", Surface::Inert),
    ("wasi:cli/terminal-input", Surface::Inert),
    ("wasi:cli/terminal-output", Surface::Inert),
    ("wasi:cli/terminal-stdin", Surface::Inert),
    ("wasi:cli/terminal-stdout", Surface::Inert),
    ("wasi:cli/terminal-stderr", Surface::Inert),
    ("wasi:filesystem/types", Surface::Inert),
    ("wasi:filesystem/preopens", Surface::Inert),
    ("wasi:sockets/network", Surface::Inert),
    ("wasi:sockets/instance-network", Surface::Inert),
    ("wasi:sockets/tcp", Surface::Inert),
    ("wasi:sockets/tcp-create-socket", Surface::Inert),
    ("wasi:sockets/udp", Surface::Inert),
    ("wasi:sockets/udp-create-socket", Surface::Inert),
    ("wasi:sockets/ip-name-lookup", Surface::Inert),
    ("wasi:http/types", Surface::Granted),
    ("wasi:http/outgoing-handler", Surface::Granted),
];

/// The wasmrtc interfaces a handler may import (any 0.1.x).
const OURS: &[&str] = &["wasmrtc:handler/host", "wasmrtc:handler/types"];

/// What a component imports, read from its bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imports {
    /// Every top-level import name, in order.
    pub names: Vec<String>,
    /// The first `wasi:http` interface among them, if any.
    pub http: Option<String>,
}

/// Why an import of this name is refused, if it is.
fn refusal(name: &str) -> Option<LoadError> {
    let (package, version) = name.split_once('@').unwrap_or((name, ""));
    let supported = if OURS.contains(&package) {
        "0.1"
    } else if INTERFACES.iter().any(|(n, _)| *n == package) {
        "0.2"
    } else {
        return Some(LoadError::ForbiddenImport(name.to_string()));
    };
    let minor = version
        .strip_prefix(supported)
        .and_then(|r| r.strip_prefix('.'));
    match minor {
        Some(rest) if !rest.is_empty() => None,
        _ => Some(LoadError::ImportVersion {
            import: name.to_string(),
            supported: format!("{package}@{supported}.x"),
        }),
    }
}

/// Read the top-level imports of a component from its bytes, without compiling or
/// validating it, and refuse the first one the host does not offer.
pub fn check_imports(bytes: &[u8]) -> Result<Imports, LoadError> {
    let mut imports = Imports::default();
    let mut parser = Parser::new(0);
    let mut at = 0usize;
    loop {
        let data = bytes.get(at..).unwrap_or_default();
        let (payload, consumed) = match parser.parse(data, true) {
            Ok(wasmparser::Chunk::Parsed { payload, consumed }) => (payload, consumed),
            Ok(wasmparser::Chunk::NeedMoreData(_)) => {
                return Err(LoadError::Invalid("the component is truncated".into()));
            }
            Err(e) => return Err(LoadError::Invalid(e.to_string())),
        };
        at += consumed;
        match payload {
            // Nested modules and components are skipped: only the outer imports are
            // what the host must provide.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                if unchecked_range.end > bytes.len() {
                    return Err(LoadError::Invalid("the component is truncated".into()));
                }
                at = unchecked_range.end;
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    let name = import.name.name.to_string();
                    if !matches!(import.ty, ComponentTypeRef::Instance(_)) {
                        return Err(LoadError::ForbiddenImport(name));
                    }
                    if let Some(e) = refusal(&name) {
                        return Err(e);
                    }
                    if imports.http.is_none() && name.starts_with("wasi:http/") {
                        imports.http = Some(name.clone());
                    }
                    imports.names.push(name);
                }
            }
            Payload::End(_) => return Ok(imports),
            _ => {}
        }
    }
}

/// Link every interface of [`INTERFACES`] (and nothing else of WASI).
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    type T = StoreState;
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
    use wasmtime_wasi_io::bindings::wasi::io;

    let l = linker;
    io::error::add_to_linker::<T, Io>(l, |t| &mut t.table)?;
    io::poll::add_to_linker::<T, Io>(l, |t| &mut t.table)?;
    io::streams::add_to_linker::<T, Io>(l, |t| &mut t.table)?;

    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;

    random::random::add_to_linker::<T, BoundedRandom>(l, BoundedRandom::view)?;
    random::insecure::add_to_linker::<T, BoundedRandom>(l, BoundedRandom::view)?;
    random::insecure_seed::add_to_linker::<T, BoundedRandom>(l, BoundedRandom::view)?;

    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;

    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;

    // Refused by the context (`StoreState::new`): no TCP, no UDP, no name lookup,
    // and an address check that refuses every address.
    sockets::network::add_to_linker::<T, WasiSockets>(l, &Default::default(), T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;

    // Every request goes through the store's own hooks (`outbound`): without a grant
    // each one is refused, and a component importing `wasi:http` is loaded only for
    // a stream that has one.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?;
    Ok(())
}

/// `wasi:io` works on the store's resource table.
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// `wasi:random` with a bound on the bytes of one call.
struct BoundedRandom;

impl HasData for BoundedRandom {
    type Data<'a> = RandomView<'a>;
}

impl BoundedRandom {
    fn view(state: &mut StoreState) -> RandomView<'_> {
        RandomView {
            limit: state.random_limit,
            random: state.wasi.random(),
            abuse: &mut state.events.abuse,
        }
    }
}

/// The random context of one store, with its bound and where abuse is recorded.
struct RandomView<'a> {
    limit: u64,
    random: &'a mut WasiRandomCtx,
    abuse: &'a mut Option<String>,
}

impl RandomView<'_> {
    fn check(&mut self, call: &str, len: u64) -> wasmtime::Result<()> {
        if len <= self.limit {
            return Ok(());
        }
        let reason = format!(
            "asked `{call}` for {len} bytes, more than the limit of {} per call",
            self.limit
        );
        self.abuse.get_or_insert_with(|| reason.clone());
        wasmtime::bail!("{reason}")
    }
}

impl random::random::Host for RandomView<'_> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.check("wasi:random/random.get-random-bytes", len)?;
        random::random::Host::get_random_bytes(self.random, len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        random::random::Host::get_random_u64(self.random)
    }
}

impl random::insecure::Host for RandomView<'_> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.check("wasi:random/insecure.get-insecure-random-bytes", len)?;
        random::insecure::Host::get_insecure_random_bytes(self.random, len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        random::insecure::Host::get_insecure_random_u64(self.random)
    }
}

impl random::insecure_seed::Host for RandomView<'_> {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        random::insecure_seed::Host::insecure_seed(self.random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_interfaces_of_known_versions_pass() {
        assert!(refusal("wasi:clocks/monotonic-clock@0.2.12").is_none());
        assert!(refusal("wasmrtc:handler/host@0.1.2").is_none());
        let version = |name| matches!(refusal(name), Some(LoadError::ImportVersion { .. }));
        let forbidden = |name| matches!(refusal(name), Some(LoadError::ForbiddenImport(_)));
        assert!(version("wasi:clocks/monotonic-clock@0.3.0"));
        assert!(version("wasi:clocks/monotonic-clock@0.20.0"));
        assert!(version("wasi:clocks/monotonic-clock"));
        assert!(version("wasmrtc:handler/host@0.2.0"));
        assert!(forbidden("wasi:keyvalue/store@0.2.0-draft"));
        assert!(forbidden("fixture:evil/raw-socket"));
        assert!(forbidden("wasi:clocks/timezone@0.2.0"));
    }

    #[test]
    fn garbage_after_the_header_is_invalid_not_a_panic() {
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        bytes.extend_from_slice(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
        assert!(matches!(check_imports(&bytes), Err(LoadError::Invalid(_))));
        assert_eq!(
            check_imports(b"\0asm\x0d\x00\x01\x00").unwrap(),
            Imports::default()
        );
    }
}
