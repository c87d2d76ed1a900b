//! The `wasmrtc` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use wasmrtc::http::TwilioAuthToken;
use wasmrtc::http::server::ServerLimits;
use wasmrtc::runtime::outbound::{Outbound, OutboundPolicy, Secrets};
use wasmrtc::runtime::{Runtime, RuntimeConfig};
use wasmrtc::tenancy::client::{self, Client};
use wasmrtc::tenancy::{Registry, SqliteStore, Tenants};
use wasmrtc::transport::{IceServer, IceServers, IceTcp};
use wasmrtc::{Lifecycle, Stream, StreamConfig, Transport};

#[derive(Parser)]
#[command(
    name = "wasmrtc",
    version,
    about = "Real-time media streams handled by sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How clients behind NAT reach the host: STUN and TURN servers handed to them, and
/// ICE-TCP.
#[derive(clap::Args)]
struct IceArgs {
    /// A STUN server handed to clients (`stun:host:port`); repeatable.
    #[arg(long)]
    stun: Vec<String>,
    /// A TURN server sharing `--turn-secret-file` with the host
    /// (`turn:host:port?transport=udp`); repeatable.
    #[arg(long, requires = "turn_secret_file")]
    turn: Vec<String>,
    /// File holding the TURN server's shared secret (coturn's `static-auth-secret`):
    /// credentials are minted from it for each client.
    #[arg(long, requires = "turn")]
    turn_secret_file: Option<PathBuf>,
    /// Seconds minted TURN credentials are valid (default 3600).
    #[arg(long)]
    turn_ttl: Option<u64>,
    /// `all` (default) or `relay`: clients use relayed candidates only.
    #[arg(long)]
    ice_transport_policy: Option<String>,
    /// Offer no ICE-TCP candidate (offered when media shares the HTTP port, for
    /// clients whose network blocks UDP).
    #[arg(long)]
    no_ice_tcp: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Load a handler component, check it and print its stream spec.
    Check {
        /// The handler component (.wasm, built for wasm32-wasip2).
        handler: PathBuf,
        /// Print the spec as JSON instead of text (with `turn_taking` when the handler takes turns).
        #[arg(long)]
        json: bool,
    },
    /// Serve one handler as a FastRTC-compatible stream at `/`, or the streams and
    /// tenants of a configuration file (tenants' streams under `/t/{tenant}/{stream}/`,
    /// the admin API under `/api`, metrics at `/metrics`).
    Serve {
        /// The handler component (.wasm, built for wasm32-wasip2).
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        handler: Option<PathBuf>,
        /// A configuration file declaring several streams (see `wasmrtc::config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// HTTP address; WebRTC media uses the same IP and port over UDP.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// UDP address for WebRTC media, if not the HTTP one.
        #[arg(long)]
        udp: Option<SocketAddr>,
        /// Address put in SDP answers (behind NAT, or when listening on 0.0.0.0); repeat
        /// for several (e.g. an IPv4 and an IPv6 one, with `--udp [::]:PORT`).
        #[arg(long)]
        advertise: Vec<IpAddr>,
        #[command(flatten)]
        ice: Box<IceArgs>,
        /// Most connections at once (default: unlimited within the instance pool).
        #[arg(long)]
        concurrency_limit: Option<usize>,
        /// Longest a connection may last, in seconds.
        #[arg(long)]
        time_limit: Option<f64>,
        /// libvpx speed of the VP8 sent to clients, -16..=16 (default 16, the fastest; lower is slower, often
        /// better in quality).
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-16..=16))]
        vp8_cpu_used: Option<i32>,
        /// Most HTTP connections open at once (default 4096).
        #[arg(long)]
        max_http_connections: Option<usize>,
        /// Seconds a client has to send its request headers (default 10).
        #[arg(long)]
        header_timeout: Option<f64>,
        /// Most HTTP connections one client address holds open (default 256; 0: no bound).
        #[arg(long)]
        per_ip_connections: Option<usize>,
        /// Requests per second one client address may make (default 50, bursts of 200; 0: no bound).
        #[arg(long)]
        per_ip_rate: Option<u32>,
        /// File holding the Twilio account's auth token: phone calls are then taken only
        /// when Twilio signed them (`X-Twilio-Signature`).
        #[arg(long)]
        twilio_auth_token_file: Option<PathBuf>,
    },
    /// Upload a handler as a new version of one of your streams on a host, and make it
    /// the one new connections get (the stream is created if it does not exist).
    Deploy {
        #[command(flatten)]
        server: ServerArgs,
        /// The stream's name.
        stream: String,
        /// The handler component (.wasm, built for wasm32-wasip2).
        handler: PathBuf,
    },
    /// List your streams on a host.
    Streams {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give new connections of a stream the version active before its last activation.
    Rollback {
        #[command(flatten)]
        server: ServerArgs,
        /// The stream's name.
        stream: String,
    },
    /// Write a new handler project from a template (`wasmrtc new --list` shows them).
    New(wasmrtc::authoring::new::Args),
    /// Build the handler project in a directory into a component and print its spec.
    Build(wasmrtc::authoring::build::Args),
    /// Run a handler offline over media files, frame by frame, printing its outputs.
    Run(wasmrtc::authoring::run::Args),
    /// Build a handler project, serve it with the built-in page, and rebuild and swap
    /// it into the running stream on every save.
    Dev(wasmrtc::authoring::dev::Args),
}

/// Where the admin API is and who is asking.
#[derive(clap::Args)]
struct ServerArgs {
    /// The host's URL.
    #[arg(long, env = "WASMRTC_SERVER", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// Your tenant's bearer token.
    #[arg(long, env = "WASMRTC_TOKEN", hide_env_values = true)]
    token: String,
}

/// How long `serve` waits, once told to stop, for the HTTP server and the connections
/// to wind down (each client is told first: `end_stream`, then a close). Past it the
/// process exits anyway; with [`RUNTIME_GRACE`] this keeps a stop under 5 s, what a
/// supervisor's SIGTERM-then-SIGKILL (and the host's contract) allows.
const DRAIN_BOUND: Duration = Duration::from_secs(4);

/// How long the tokio runtime, dropping, waits for tasks that outlived the drain.
const RUNTIME_GRACE: Duration = Duration::from_millis(300);

/// Turn off backtrace capture in library errors unless RUST_LIB_BACKTRACE asks.
#[allow(unsafe_code)]
fn no_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

fn main() -> ExitCode {
    // Errors a guest causes (a refused request, a cut body) are `anyhow` errors the
    // guest may format; with RUST_BACKTRACE set each would capture and symbolize a
    // backtrace on the host's CPU. Panics keep theirs (RUST_BACKTRACE); library
    // errors carry none unless the operator asks with RUST_LIB_BACKTRACE.
    no_library_backtraces();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "wasmrtc=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Whatever is still running (a session past the drain bound) is dropped, not
    // waited for.
    runtime.shutdown_timeout(RUNTIME_GRACE);
    code
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, naming it.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Serve `app` until a stop signal, then shut down within [`DRAIN_BOUND`]: refuse
/// new connections and tell the live ones (`lifecycle.shutdown()`), stop accepting
/// HTTP and finish the requests under way, and wait for the connections' tasks.
async fn serve_until_stopped(
    http: tokio::net::TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    ice_tcp: Option<IceTcp>,
    lifecycle: Lifecycle,
) -> anyhow::Result<()> {
    let server =
        wasmrtc::http::server::serve_with_ice_tcp(http, app, limits, ice_tcp, lifecycle.draining());
    let mut server = std::pin::pin!(server);
    let signal = tokio::select! {
        r = &mut server => return r.context("the HTTP server failed"),
        signal = stop_signal() => signal,
    };
    let deadline = tokio::time::Instant::now() + DRAIN_BOUND;
    eprintln!(
        "wasmrtc: {signal}: shutting down ({} connection(s) to close, at most {} s)",
        lifecycle.active(),
        DRAIN_BOUND.as_secs_f64()
    );
    lifecycle.shutdown();
    // Upgraded WebSockets are not the HTTP server's to wait for (the lifecycle tracks
    // them), but a long request such as an `/outputs` stream is: bound that wait too.
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("the HTTP server failed while stopping: {e}"),
        Err(_) => tracing::warn!("HTTP requests still open at the drain bound; dropping them"),
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if lifecycle.wait(left).await {
        eprintln!("wasmrtc: every connection closed; exiting");
    } else {
        eprintln!(
            "wasmrtc: {} connection(s) still open after {} s; exiting anyway",
            lifecycle.active(),
            DRAIN_BOUND.as_secs_f64()
        );
    }
    Ok(())
}

/// The ICE servers of `serve`'s flags: STUN URLs, and TURN URLs with the secret file.
fn cli_ice(args: IceArgs) -> anyhow::Result<IceServers> {
    let IceArgs {
        stun,
        turn,
        turn_secret_file,
        turn_ttl: ttl,
        ice_transport_policy: policy,
        no_ice_tcp: _,
    } = args;
    let secret_file = turn_secret_file.as_deref();
    let mut secrets = Secrets::default();
    if let Some(file) = secret_file {
        let text = wasmrtc::config::SecretEntry::in_file(file)
            .read("--turn-secret-file")
            .map_err(anyhow::Error::msg)?;
        secrets = Secrets::new([("turn".to_string(), text)]).map_err(|_| {
            anyhow::anyhow!(
                "{}: not a usable TURN secret (empty, over 4096 bytes, or with control characters)",
                file.display()
            )
        })?;
    }
    let entry = wasmrtc::config::IceEntry {
        servers: stun
            .into_iter()
            .map(|url| IceServer {
                urls: vec![url],
                username: None,
                credential: None,
            })
            .collect(),
        turn_secret: secret_file.map(|_| "turn".to_string()),
        turn_urls: turn,
        turn_ttl: ttl,
        transport_policy: policy,
        tcp: None,
    };
    entry.servers(&secrets).map_err(anyhow::Error::msg)
}

fn stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::New(args) => wasmrtc::authoring::new::main(args),
        Command::Build(args) => wasmrtc::authoring::build::main(args).await,
        Command::Run(args) => wasmrtc::authoring::run::main(args).await,
        Command::Dev(args) => {
            let dev = wasmrtc::authoring::dev::start(args).await?;
            serve_until_stopped(
                dev.http,
                dev.app,
                ServerLimits::default(),
                dev.transport.ice_tcp().cloned(),
                dev.transport.lifecycle().clone(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            handler,
            config,
            listen,
            udp,
            advertise,
            ice: ice_args,
            concurrency_limit,
            time_limit,
            vp8_cpu_used,
            max_http_connections,
            header_timeout,
            per_ip_connections,
            per_ip_rate,
            twilio_auth_token_file,
        } => {
            let mut runtime_config = RuntimeConfig::default();
            // (name, component path, prefix, limits, outbound grant)
            let mut entries = Vec::new();
            let mut outbound_policy = OutboundPolicy::default();
            let mut secrets = Secrets::default();
            let (mut listen_cfg, mut udp_cfg, mut advertise_cfg) = (None, None, Vec::new());
            // The host's STUN and TURN servers.
            let mut ice = IceServers::default();
            let mut ice_tcp = !ice_args.no_ice_tcp;
            let mut vp8_cfg = None;
            let mut http_cfg = wasmrtc::config::HttpEntry::default();
            let mut max_size_cfg = None;
            let mut twilio_token = None;
            // (data_dir, tenants) when the file declares tenants.
            let mut hosting = None;
            let mut metrics_token = None;
            if let Some(path) = &config {
                let file = wasmrtc::config::load(path)?;
                (listen_cfg, udp_cfg) = (file.listen, file.udp);
                advertise_cfg = file.advertise.as_ref().map(|a| a.ips()).unwrap_or_default();
                runtime_config.breaker = file.breaker.policy();
                vp8_cfg = file.video.vp8_cpu_used;
                max_size_cfg = file.video.max_size;
                http_cfg = file.http.clone();
                outbound_policy = file.outbound.policy().map_err(anyhow::Error::msg)?;
                if file.needs_secrets() {
                    secrets = file.read_secrets().map_err(anyhow::Error::msg)?;
                }
                twilio_token = file
                    .telephone
                    .auth_token(&secrets)
                    .map_err(anyhow::Error::msg)?;
                ice_tcp &= file.ice.tcp.unwrap_or(true);
                ice = file
                    .ice
                    .servers(&secrets)
                    .map_err(|e| anyhow::anyhow!("[ice] {e}"))?;
                metrics_token = file
                    .metrics_token_sha256
                    .as_deref()
                    .and_then(wasmrtc::tenancy::TokenHash::parse);
                if let Some(dir) = file.data_dir.filter(|_| !file.tenants.is_empty()) {
                    hosting = Some((dir, file.tenants));
                }
                for s in file.streams {
                    let stream_ice = s
                        .ice
                        .as_ref()
                        .map(|entry| entry.servers(&secrets).map(Arc::new))
                        .transpose()
                        .map_err(|e| {
                            anyhow::anyhow!("stream `{}`, [stream.ice] {e}", s.name.get_ref())
                        })?;
                    let limits = StreamConfig {
                        concurrency_limit: s.concurrency_limit,
                        time_limit: s.time_limit.map(Duration::from_secs_f64),
                        connect_timeout: s.connect_timeout.map_or(
                            StreamConfig::default().connect_timeout,
                            Duration::from_secs_f64,
                        ),
                        ice: stream_ice,
                    };
                    let prefix = s.prefix();
                    let grant = s
                        .outbound
                        .as_ref()
                        .map(|o| o.grant())
                        .transpose()
                        .map_err(anyhow::Error::msg)?;
                    entries.push((
                        s.name.into_inner(),
                        s.component.into_inner(),
                        prefix,
                        limits,
                        grant,
                    ));
                }
            } else if let Some(handler) = handler {
                let limits = StreamConfig {
                    concurrency_limit,
                    time_limit: time_limit.map(Duration::from_secs_f64),
                    ..StreamConfig::default()
                };
                entries.push((stem(&handler), handler, String::new(), limits, None));
            }
            if !(ice_args.stun.is_empty()
                && ice_args.turn.is_empty()
                && ice_args.ice_transport_policy.is_none())
            {
                ice = cli_ice(*ice_args)?;
            }
            let runtime = Runtime::new(runtime_config)?;
            let listen = listen
                .or(listen_cfg)
                .unwrap_or(([127, 0, 0, 1], 8000).into());
            let http = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let http_addr = http.local_addr()?;
            let udp = udp.or(udp_cfg).unwrap_or(http_addr);
            let advertise = if advertise.is_empty() {
                advertise_cfg
            } else {
                advertise
            };
            let mut transport = Transport::bind(udp, None)
                .with_context(|| format!("cannot bind UDP {udp}"))?
                .with_advertised(&advertise)
                .map_err(anyhow::Error::msg)?
                .with_ice_servers(ice);
            if ice_tcp && udp == http_addr {
                transport = transport.with_ice_tcp();
            }
            if let Some(cpu_used) = vp8_cpu_used.or(vp8_cfg) {
                transport = transport.with_vp8_cpu_used(cpu_used);
            }
            if let Some([w, h]) = max_size_cfg {
                transport = transport.with_max_picture(w, h);
            }
            if let Some(file) = &twilio_auth_token_file {
                let text = wasmrtc::config::SecretEntry::in_file(file)
                    .read("--twilio-auth-token-file")
                    .map_err(anyhow::Error::msg)?;
                twilio_token =
                    Some(TwilioAuthToken::new(&text).with_context(|| file.display().to_string())?);
            }
            if let Some(token) = twilio_token {
                transport = transport.with_twilio_auth_token(token);
            }
            let mut limits = ServerLimits::default();
            if let Some(n) = max_http_connections.or(http_cfg.max_connections) {
                limits.max_connections = n;
            }
            if let Some(secs) = header_timeout.or(http_cfg.header_timeout) {
                anyhow::ensure!(
                    secs.is_finite() && secs > 0.0,
                    "header_timeout must be a positive number of seconds"
                );
                limits.header_timeout = Duration::from_secs_f64(secs);
            }
            if let Some(n) = per_ip_connections.or(http_cfg.per_ip_connections) {
                limits.per_ip.connections = n;
            }
            if let Some(n) = per_ip_rate.or(http_cfg.per_ip_requests_per_second) {
                limits.per_ip.requests_per_second = n;
            }
            if let Some(n) = http_cfg.per_ip_burst {
                limits.per_ip.burst = n;
            }
            if let Some(trust) = http_cfg.trust_forwarded_for {
                limits.per_ip.trust_forwarded_for = trust;
            }
            let mut streams = Vec::new();
            for (name, path, prefix, limits, grant) in entries {
                let outbound = grant
                    .map(|g| Outbound::new(&name, g, outbound_policy.clone(), secrets.clone()))
                    .transpose()?;
                let component = runtime
                    .load_file(&name, &path)
                    .await
                    .and_then(|c| c.with_outbound(outbound))
                    .with_context(|| format!("{} was rejected", path.display()))?;
                eprintln!("wasmrtc: stream {name} ({}) at {prefix}/", path.display());
                streams.push((prefix, Stream::new(component, transport.clone(), limits)));
            }
            let mut app = wasmrtc::http::app(&streams);
            if let Some((dir, configs)) = hosting {
                let mut tenants = Tenants::new(configs.clone()).map_err(|e| anyhow::anyhow!(e))?;
                for t in &configs {
                    if let Some(entry) = &t.ice {
                        let servers = entry.servers(&secrets).map_err(|e| {
                            anyhow::anyhow!("tenant `{}`, [tenant.ice] {e}", t.name)
                        })?;
                        tenants
                            .set_ice(&t.name, servers)
                            .map_err(anyhow::Error::msg)?;
                    }
                }
                let names: Vec<String> = tenants.iter().map(|t| t.name().to_string()).collect();
                let store = SqliteStore::open(&dir)
                    .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
                let registry = Registry::open_with_outbound(
                    runtime.clone(),
                    transport.clone(),
                    tenants,
                    Arc::new(store),
                    outbound_policy.clone(),
                )
                .await
                .context("cannot restore the hosted streams")?;
                for live in registry.list(None) {
                    eprintln!(
                        "wasmrtc: stream {}/{} at {} (version {})",
                        live.tenant().name(),
                        live.name(),
                        live.url(),
                        live.active_version()
                            .map_or("none".to_string(), |v| v.to_string())
                    );
                }
                eprintln!(
                    "wasmrtc: tenants {} (admin API at /api, data in {})",
                    names.join(", "),
                    dir.display()
                );
                if let Some(token) = metrics_token {
                    registry.protect_metrics(token);
                }
                app = app.merge(registry.router(&streams));
            } else {
                app = app.merge(wasmrtc::tenancy::metrics::static_routes(
                    streams.clone(),
                    metrics_token,
                ));
            }
            eprintln!(
                "wasmrtc: serving on http://{http_addr} (WebRTC media on udp {})",
                transport.advertised()
            );
            serve_until_stopped(
                http,
                app,
                limits,
                transport.ice_tcp().cloned(),
                transport.lifecycle().clone(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            server,
            stream,
            handler,
        } => {
            let client = Client::new(&server.server, &server.token)?;
            let reply = client.deploy(&stream, &handler).await?;
            let field = |k: &str| reply.get(k).cloned().unwrap_or_default();
            println!(
                "deployed {} to `{stream}` as version {} (sha256 {}, {} bytes)",
                handler.display(),
                field("version"),
                field("sha256").as_str().unwrap_or("?"),
                field("size"),
            );
            println!(
                "new connections get it at {}{}",
                client.server(),
                field("url").as_str().unwrap_or("")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Streams { server, json } => {
            let client = Client::new(&server.server, &server.token)?;
            let listing = client.streams().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                print!("{}", client::streams_table(&listing));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { server, stream } => {
            let client = Client::new(&server.server, &server.token)?;
            let reply = client.rollback(&stream).await?;
            let version = |k: &str| {
                reply
                    .get(k)
                    .and_then(serde_json::Value::as_u64)
                    .map_or("none".to_string(), |v| format!("version {v}"))
            };
            println!(
                "`{stream}`: rolled back from {} to {}; new connections get {}",
                version("from"),
                version("active_version"),
                version("active_version")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { handler, json } => {
            let runtime = Runtime::new(RuntimeConfig::default())?;
            match runtime.load_file(&stem(&handler), &handler).await {
                Ok(component) => {
                    if json {
                        let spec = wasmrtc::authoring::build::spec_json(&component)?;
                        println!("{}", serde_json::to_string_pretty(&spec)?);
                    } else {
                        print!("{}", wasmrtc::authoring::build::spec_text(&component));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: rejected: {e}", handler.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
