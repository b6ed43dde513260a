//! `cove-toolbox`: the in-sandbox daemon serving the Daytona toolbox API (CONTRACT §10).
//!
//! It listens on a unix socket (shared with the runner) and/or TCP, runs the image entrypoint
//! as a child, and serves files, processes, sessions, git and LSP. The routes are one table
//! ([`routes`]) from which the router and, with the `openapi` feature, `openapi/toolbox.json` come.
//!
//! Bounds that keep it up whatever a sandbox does:
//! * command output (`process/execute`, `code-run`, session commands, the entrypoint) is kept to
//!   its last [`output::TAIL_BYTES`] (4 MiB), once for stdout and stderr together; answers then
//!   start with [`output::dropped_marker`];
//! * `process/execute` without `timeout` stops after [`process::DEFAULT_EXECUTE_TIMEOUT`] (360 s)
//!   with 408 `PROCESS_EXECUTION_TIMEOUT`;
//! * JSON bodies: [`server::JSON_BODY_LIMIT`] (8 MiB), else 413 in the daemon's envelope; uploads
//!   are streamed to disk and not limited;
//! * a request body a handler left unread is read to its end (up to 8 MiB more, 10 s) before the
//!   answer goes out, so the client gets the answer, not a broken pipe ([`drain`]);
//! * the log: colours only on a terminal, no ERROR line per request (failures are `warn`, at most
//!   20 a minute), user input escaped ([`logging`]).

pub mod busy;
pub mod client;
pub mod conn_pool;
pub mod drain;
pub mod env;
pub mod error;
pub mod files;
pub mod git;
pub mod git_ext;
pub mod info;
pub mod interpreter;
pub mod logging;
pub mod lsp;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod output;
pub mod paths;
pub mod ports;
pub mod process;
pub mod pty;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod supervisor;
pub mod system;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Daemon flags; the image command follows `--`.
#[derive(Debug, clap::Parser)]
#[command(name = "cove-toolbox", version, about)]
pub struct Args {
    /// Unix socket to listen on (e.g. /var/run/cove/toolbox.sock).
    #[arg(long, env = "COVE_TOOLBOX_SOCKET")]
    pub socket: Option<PathBuf>,
    /// TCP address to listen on (e.g. 0.0.0.0:2280). Default when no --socket is given.
    #[arg(long, env = "COVE_TOOLBOX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Work dir for relative paths and commands (default: the current dir, else $HOME).
    #[arg(long, env = "COVE_TOOLBOX_WORKDIR")]
    pub workdir: Option<PathBuf>,
    /// Home dir reported by /user-home-dir (default: $HOME).
    #[arg(long, env = "COVE_TOOLBOX_HOME")]
    pub home: Option<PathBuf>,
    /// Jail: every path resolves under DIR; escapes are refused.
    #[arg(long, env = "COVE_TOOLBOX_ROOT")]
    pub root: Option<PathBuf>,
    /// Where session FIFOs live (default: $TMPDIR/cove-toolbox-<pid>).
    #[arg(long, env = "COVE_TOOLBOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The image entrypoint/cmd to run as a child.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub use logging::init_tracing;

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(args: Args) -> std::io::Result<()> {
    let env_home = std::env::var_os("HOME").map(PathBuf::from);
    let home = args
        .home
        .clone()
        .or_else(|| args.root.as_ref().map(|_| PathBuf::from("/")))
        .or(env_home.clone())
        .unwrap_or_else(|| PathBuf::from("/"));
    let work_dir = match (&args.workdir, &args.root) {
        (Some(w), _) => w.clone(),
        (None, Some(_)) => home.clone(),
        (None, None) => std::env::current_dir()
            .ok()
            .filter(|d| d != std::path::Path::new("/"))
            .unwrap_or_else(|| home.clone()),
    };
    let paths = paths::Paths::new(args.root.as_deref(), &work_dir, &home)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cove-toolbox-{}", std::process::id()))
    });
    std::fs::create_dir_all(&state_dir)?;
    let state_dir = std::fs::canonicalize(&state_dir)?;
    let state = server::AppState::new(paths, state_dir.clone());
    let entry = if args.command.is_empty() {
        None
    } else {
        let e = supervisor::spawn_entrypoint(&args.command, &state.paths.work_dir_real())?;
        state.sessions.set_entrypoint(e.log.clone());
        Some(Arc::new(e))
    };
    let listen = match (&args.socket, args.listen) {
        (None, None) => Some(SocketAddr::from(([0, 0, 0, 0], 2280))),
        (_, l) => l,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state_for_shutdown = Arc::clone(&state);
    let router = routes::router(state);
    let socket = args.socket.clone();
    let serving = tokio::spawn(async move {
        server::serve(router, socket.as_deref(), listen, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    tokio::select! {
        res = serving => return res.map_err(std::io::Error::other)?,
        _ = supervisor::shutdown_signal(entry) => {}
    }
    let _ = stop_tx.send(());
    state_for_shutdown.interpreters.shutdown();
    // Give in-flight requests a moment; open websockets do not hold the exit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(sock) = &args.socket {
        let _ = std::fs::remove_file(sock);
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}
