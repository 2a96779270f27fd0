//! `Application`: builds the whole server (directory, actors, HTTP) and runs it.
//! `main` and the integration tests use this same code path.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_rt::Arbiter;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use futures_util::future::join_all;
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;

use crate::actors::operator::Track;
use crate::actors::router::RouterActor;
use crate::actors::{Core, Stores};
use crate::archive::Archive;
use crate::auth::{hash_password, Auth, Principal};
use crate::config::{Config, Limits};
use crate::domain::directory::{Directory, NewOperator};
use crate::domain::operator::Role;
use crate::domain::time::Timestamp;
use crate::domain::OperatorId;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::persist::records::{ConversationV3, RecordV1, StatusV1};
use crate::persist::{self, Store};
use crate::telemetry::RequestSpan;
use crate::webhooks::Webhooks;
use crate::{demo, http, mail, shutdown};

pub struct Application {
    server: Server,
    local_addr: SocketAddr,
    /// Threads of the conversation/operator actors and of the router.
    arbiters: Vec<Arbiter>,
    sessions_tx: watch::Sender<bool>,
    hub: web::Data<Hub>,
}

/// How often `--retention-days` deletes what has aged out (and once at start).
const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Connections the kernel queues for accepting (it caps this at
/// `net.core.somaxconn`, 4096 on current Linux).
const LISTEN_BACKLOG: u32 = 4096;

/// The file a generated admin password is written to, inside the data directory.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Creates the `admin` user. With no configured password a random one is
/// written to `INITIAL_PASSWORD_FILE` (readable by the owner only) and the log
/// says where: a password must never be in the logs, which often end up in a
/// shared log store.
fn seed_admin(directory: &mut Directory, password: Option<String>, data_dir: &Path) -> anyhow::Result<()> {
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => {
            let mut bytes = [0u8; 12];
            OsRng.fill_bytes(&mut bytes);
            (hex::encode(bytes), true)
        }
    };
    let password_hash = hash_password(&password).context("invalid SWITCHBOARD_ADMIN_PASSWORD")?;
    let admin = NewOperator {
        login: "admin".into(),
        name: "Administrator".into(),
        password_hash,
        role: Role::Admin,
        languages: vec!["en".into()],
        country: None,
    };
    directory.create_operator(admin).context("creating the admin user")?;
    if generated {
        let path = data_dir.join(INITIAL_PASSWORD_FILE);
        write_private(&path, &password).with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(
            "first start: created user `admin`; its password is in {} (or set SWITCHBOARD_ADMIN_PASSWORD to choose it)",
            path.display()
        );
    }
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    writeln!(file, "{contents}")?;
    file.sync_all()
}

/// Conversations the journal says were closed but not yet archived (the
/// server stopped in between): archived now, before anything starts, so they
/// never come back to life. Archiving again what is already there is harmless.
async fn finish_archiving(core: &Core, closed: Vec<ConversationV3>) -> anyhow::Result<()> {
    let stored = closed.iter().map(|stored| {
        let mut conversation = stored.to_domain();
        conversation.closed_at = Some(Timestamp::now());
        core.archive.store(core.archive_entry(&conversation, stored.visitor_token()))
    });
    for result in join_all(stored).await {
        result.context("archiving the conversations closed before the restart")?;
    }
    for stored in &closed {
        core.store.journal.append(&RecordV1::Archived { id: stored.id() }).await?;
    }
    if !closed.is_empty() {
        tracing::info!(conversations = closed.len(), "archived the conversations closed before the restart");
    }
    Ok(())
}

impl Application {
    /// Recovers the state from the data directory, starts the actors and
    /// binds the listener (port 0 picks a free one).
    ///
    /// # Errors
    /// When the data directory cannot be created or recovered (see
    /// `persist::recover`), or the address cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
        let recovered = persist::recover(dir)?;
        let persistence = config.persistence;
        let store = Store::open(dir, recovered.next_segment, persistence.fsync, persistence.fsync_interval)
            .with_context(|| format!("opening the journal in {}", dir.display()))?;
        let state = recovered.state;
        let fresh = state.directory.is_none();
        let mut directory = state.directory.as_ref().map(Directory::from).unwrap_or_default();
        if fresh {
            seed_admin(&mut directory, config.admin_password.clone(), dir)?;
            if config.demo {
                demo::seed(&mut directory)?;
            }
        } else if config.demo {
            tracing::info!("--demo ignored: the data directory already holds a team");
        }

        let archive = Archive::open(dir)?;
        let arbiters: Vec<Arbiter> = (0..config.actor_threads.max(1)).map(|_| Arbiter::new()).collect();
        let metrics = Arc::new(Metrics::new());
        let auth = Auth::new(config.auth);
        for (token, operator) in state.tokens {
            auth.restore(token, Principal::Operator(OperatorId(operator)));
        }
        // One crypto provider for every TLS client (webhooks, SMTP); a second server in the process finds it set.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let webhooks = Arc::new(Webhooks::new(archive.webhooks().await?, config.webhooks.allow_private, config.webhooks.timeout));
        let stores = Stores { store, archive, auth, webhooks };
        // Whether mail is on is the mail configuration's to say (tests set it without the flag).
        let limits = Limits { mail: config.mail.is_some(), ..config.limits };
        let core = Core::new(directory, metrics, limits, arbiters.iter().map(Arbiter::handle).collect(), stores);
        if fresh {
            let first = RecordV1::directory(&core.directory.read());
            core.store.journal.append(&first).await.context("storing the first directory")?;
        }
        core.ids_after(core.archive.max_id()?);
        let (live, closed): (Vec<_>, Vec<_>) =
            state.conversations.into_values().partition(|c| c.base.base.header.status != StatusV1::Closed);
        // Closed ones count too: the highest id may be one the crash caught
        // between its close and its archiving (found by the crash test).
        core.ids_after(closed.iter().map(ConversationV3::id).max().unwrap_or(0));
        finish_archiving(&core, closed).await?;
        let mut conversations = Vec::with_capacity(live.len());
        for stored in live {
            let conversation = stored.to_domain();
            if let Some(token) = stored.visitor_token() {
                core.auth.restore(token.to_owned(), Principal::Visitor(conversation.id));
            }
            for &member in conversation.members() {
                core.operator(member).do_send(Track::Joined(conversation.id));
            }
            let addr = core.restore_conversation(conversation.clone(), stored.visitor_token().map(str::to_owned));
            conversations.push((addr, conversation));
        }
        // The router gets a thread of its own: it must never wait behind a busy conversation.
        let router_arbiter = Arbiter::new();
        let router_core = core.clone();
        core.set_router(RouterActor::start_in_arbiter(&router_arbiter.handle(), move |_| {
            let mut router = RouterActor::new(router_core);
            router.restore(&conversations);
            router
        }));

        let (sessions_tx, sessions_rx) = watch::channel(false);
        actix_rt::spawn(core.webhooks.clone().run(core.archive.clone(), sessions_rx.clone()));
        if let Some(mail) = config.mail.clone() {
            actix_rt::spawn(mail::run(mail, core.archive.clone(), core.metrics.clone(), sessions_rx.clone()));
        }
        let hub = web::Data::new(Hub::new(core, config.ws.clone(), config.http.max_body_bytes, sessions_rx));
        let proxies = web::Data::new(config.http.trusted_proxies.clone());

        let hub_handle = hub.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(hub.clone())
                .app_data(proxies.clone())
                .app_data(web::PathConfig::default().error_handler(http::path_error))
                .app_data(web::QueryConfig::default().error_handler(http::query_error))
                .wrap(actix_web::middleware::from_fn(http::linger::drain_unread_body))
                .wrap(ErrorHandlers::new().default_handler(http::json_error_body))
                .wrap(TracingLogger::<RequestSpan>::new())
                .configure(http::configure)
        })
        // std's listener queues 128 connections: a burst of visitors opening
        // sessions at once (a load test, a campaign link) overflowed it and
        // the kernel dropped their SYNs, each costing the client a 1 s, 3 s,
        // 7 s retransmit (BENCHMARKS.md, "The tail's two causes").
        .backlog(LISTEN_BACKLOG)
        .bind(config.http.bind)
        .with_context(|| format!("binding {}", config.http.bind))?
        // Chat frames are small and latency-bound: never wait for Nagle's algorithm.
        .tcp_nodelay(true)
        // No linger: it kept every WebSocket open up to a second after its
        // closing handshake; `http::linger` drains unread bodies instead.
        .client_disconnect_timeout(Duration::ZERO)
        .workers(config.http.workers)
        .disable_signals()
        .shutdown_timeout(config.http.drain_timeout.as_secs().max(1));
        let local_addr = *server.addrs().first().context("the server bound no address")?;
        let server = server.run();
        tracing::info!("Switchboard listening on http://{local_addr} (data in {})", config.data_dir.display());

        if let Some(interval) = persistence.snapshot_interval {
            let hub = hub_handle.clone();
            let mut stopping = hub.shutdown_signal();
            actix_rt::spawn(async move {
                let mut ticks = actix_rt::time::interval(interval);
                ticks.tick().await;
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = stopping.changed() => return,
                    }
                    if let Err(e) = hub.snapshot().await {
                        tracing::error!(error = %e, "periodic snapshot failed");
                    }
                }
            });
        }

        if let Some(days) = config.retention_days {
            let hub = hub_handle.clone();
            let mut stopping = hub.shutdown_signal();
            actix_rt::spawn(async move {
                let mut ticks = actix_rt::time::interval(RETENTION_SWEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = stopping.changed() => return,
                    }
                    match hub.sweep_history(days).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, days, "retention: deleted closed conversations"),
                        Err(e) => tracing::error!(error = %e, "retention sweep failed; retried at the next one"),
                    }
                }
            });
        }

        let mut arbiters = arbiters;
        arbiters.push(router_arbiter);
        Ok(Application { server, local_addr, arbiters, sessions_tx, hub: hub_handle })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until `stop` resolves (or the server fails), then shuts down in order.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application { mut server, arbiters, sessions_tx, hub, .. } = self;
        let last_snapshot = async move {
            if let Err(e) = hub.snapshot().await {
                tracing::error!(error = %e, "final snapshot failed; the journal still holds every acknowledged change");
            }
            hub.flush_webhooks().await;
        };
        tokio::select! {
            res = &mut server => res.context("HTTP server failed"),
            () = stop => shutdown::stop(&sessions_tx, server, last_snapshot, arbiters).await.context("HTTP server failed while stopping"),
        }
    }
}
