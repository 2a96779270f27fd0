//! Settings with usable defaults, so `cargo run --release` needs no file;
//! every value can be overridden by a flag or an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::http::client::TrustedProxies;
use crate::mail::MailConfig;
use crate::persist::journal::FsyncMode;

/// Everything the server can be told at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpConfig,
    pub ws: WsConfig,
    pub limits: Limits,
    pub auth: AuthConfig,
    /// Where state lives on disk; created if missing.
    pub data_dir: PathBuf,
    pub persistence: PersistConfig,
    /// Password of the `admin` user created on first start; random (and logged once) when absent.
    pub admin_password: Option<String>,
    /// Seed a sample team so a newcomer can try everything at once.
    pub demo: bool,
    /// How to send mail (leads, transcripts); `None`: no mail.
    pub mail: Option<MailConfig>,
    pub webhooks: WebhookConfig,
    /// Threads running conversation and operator actors; one per core keeps a busy
    /// conversation from stalling the others without oversubscribing the machine.
    pub actor_threads: usize,
    /// Closed conversations older than this many days are deleted (`None`: kept forever).
    pub retention_days: Option<u32>,
}

/// What the binary was asked to do.
pub enum Launch {
    Serve(Box<Config>),
    /// Copy a (possibly running) server's data directory.
    Backup {
        data_dir: PathBuf,
        to: PathBuf,
    },
}

#[derive(Debug, clap::Subcommand)]
enum Task {
    /// Copy the data directory (snapshot, journal, archive) consistently while the server runs.
    /// Restore: stop the server, use the copy as `--data-dir`, start it.
    Backup {
        /// A new (or empty) directory to copy into.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    pub workers: usize,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Upper bound on waiting for open connections when stopping.
    pub drain_timeout: Duration,
    /// Reverse proxies whose forwarding headers give the client's address, scheme and host.
    pub trusted_proxies: TrustedProxies,
}

/// How webhooks are delivered.
#[derive(Clone, Copy, Debug)]
pub struct WebhookConfig {
    /// Let webhooks reach private and loopback addresses (an intranet CRM; tests).
    pub allow_private: bool,
    /// How long one delivery may take before it counts as failed.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct WsConfig {
    /// How often the server pings; half or less of `client_timeout` so one lost pong is tolerated.
    pub heartbeat_interval: Duration,
    /// A connection silent (no pong, no frame) this long is closed.
    pub client_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Events buffered per connection; a client that lets it fill is too slow and is disconnected
    /// so that it can never stall an actor. An operator's console receives every event of all
    /// their conversations and the board (a burst of assignments can be hundreds of events),
    /// a visitor's widget those of one conversation, so the two get different room.
    pub agent_queue: usize,
    pub visitor_queue: usize,
    /// Open WebSocket connections above which upgrades get 503 `over_capacity`.
    pub max_connections: usize,
    /// Browser origins (`https://support.example.com`) allowed to open an operator
    /// console socket besides the server's own; other browser pages get 403.
    pub allowed_origins: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest message body, in characters as sent (the stored body is trimmed).
    pub max_message_chars: usize,
    /// How long a visitor may pause before a chatbot's `free_input_multi`
    /// question counts as answered.
    pub bot_input_pause: Duration,
    /// Mail can be sent (`--smtp-url`): leads are e-mailed, transcripts offered.
    pub mail: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct PersistConfig {
    /// `None`: snapshots only on demand and at shutdown.
    pub snapshot_interval: Option<Duration>,
    pub fsync: FsyncMode,
    pub fsync_interval: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct AuthConfig {
    /// Failed logins per login name (and per client IP) tolerated within `login_window`
    /// before further attempts get 429 until the window ends.
    pub max_login_failures: u32,
    pub login_window: Duration,
    /// A token unused this long stops working (operators log in again, widgets start a new chat).
    pub token_idle_timeout: Duration,
    /// Visitor sessions one IP may open per minute; 0 = unlimited.
    pub visitor_sessions_per_minute: u32,
}

/// Switchboard: live chat for small support teams, with expertise-based routing.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "SWITCHBOARD_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory holding the server's state.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "snapshots")]
    data_dir: PathBuf,
    /// Seed a sample team: operators alice, bob, carol, dave (password `demo`) and a "Website" channel.
    #[arg(long, env = "SWITCHBOARD_DEMO")]
    demo: bool,
    /// Password of the `admin` user created on first start (default: random, written to `<data-dir>/initial-admin-password`).
    #[arg(long = "admin-password", env = "SWITCHBOARD_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// HTTP worker threads (default: number of cores).
    #[arg(long, env = "SWITCHBOARD_WORKERS")]
    workers: Option<usize>,
    /// Threads running conversation and operator actors (default: number of cores).
    /// On a machine shared with other busy processes, fewer threads wake each other less.
    #[arg(long, env = "SWITCHBOARD_ACTOR_THREADS")]
    actor_threads: Option<usize>,
    /// Maximum concurrent WebSocket connections.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = 50_000)]
    max_connections: usize,
    /// Longest chat message in characters.
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_CHARS", default_value_t = 4000)]
    max_message_chars: usize,
    /// Largest HTTP request body and WebSocket frame, in bytes.
    #[arg(long, env = "SWITCHBOARD_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    max_body_bytes: usize,
    /// Other origins allowed to open operator WebSockets (comma-separated), besides the server's own.
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Reverse proxies to believe (comma-separated CIDR blocks or addresses, e.g. `127.0.0.1,10.0.0.0/8`):
    /// only from them are `Forwarded` / `X-Forwarded-For` / `-Proto` / `-Host` used for the
    /// client's address (per-address limits) and origin. Default: nobody, headers ignored.
    #[arg(long, env = "SWITCHBOARD_TRUSTED_PROXIES", default_value = "")]
    trusted_proxies: TrustedProxies,
    /// Visitor sessions one IP address may open per minute (0 = no limit, e.g. for load tests).
    #[arg(long, env = "SWITCHBOARD_VISITOR_SESSIONS_PER_MINUTE", default_value_t = 60)]
    visitor_sessions_per_minute: u32,
    /// Hours a token may go unused before it stops working.
    #[arg(long, env = "SWITCHBOARD_TOKEN_IDLE_HOURS", default_value_t = 12)]
    token_idle_hours: u64,
    /// Seconds between snapshots of the whole state (0 = only on demand and at shutdown).
    #[arg(long, env = "SWITCHBOARD_SNAPSHOT_INTERVAL_S", default_value_t = 60)]
    snapshot_interval_s: u64,
    /// When a write is acknowledged: `always` = once on disk (fdatasync, group-committed);
    /// `batch` = once handed to the kernel, synced every `--fsync-interval-ms`.
    #[arg(long, env = "SWITCHBOARD_FSYNC", value_enum, default_value = "always")]
    fsync: FsyncMode,
    /// In `--fsync batch`, the longest time written data waits for fdatasync.
    #[arg(long, env = "SWITCHBOARD_FSYNC_INTERVAL_MS", default_value_t = 50)]
    fsync_interval_ms: u64,
    /// Delete closed conversations older than this many days, checked hourly (default: keep forever).
    #[arg(long, env = "SWITCHBOARD_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    retention_days: Option<u32>,
    /// Send mail through this SMTP server: `smtp://[user:password@]host[:port][?tls=required]`
    /// (STARTTLS), or `smtps://…` (TLS from the start). New leads go to their channel's
    /// `notify_email`; visitors may ask for their transcript. Default: no mail.
    #[arg(long, env = "SWITCHBOARD_SMTP_URL", value_parser = crate::mail::check_url)]
    smtp_url: Option<String>,
    /// The sender of those mails.
    #[arg(long, env = "SWITCHBOARD_SMTP_FROM", default_value = "Switchboard <switchboard@localhost>", value_parser = crate::mail::check_from)]
    smtp_from: String,
    /// Let webhooks reach private and loopback addresses (refused by default, so a webhook
    /// cannot probe the server's own network).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Seconds one webhook delivery may take before it counts as failed (and is retried).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_TIMEOUT_S", default_value_t = 10)]
    webhook_timeout_s: u64,
    /// Seconds of silence after which a chatbot's multi-line question counts as answered.
    #[arg(long, env = "SWITCHBOARD_BOT_INPUT_PAUSE_S", default_value_t = 15)]
    bot_input_pause_s: u64,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Launch {
    /// Reads flags and environment; exits with usage on bad input (clap's behaviour).
    pub fn from_args() -> Launch {
        let cli = Cli::parse();
        match cli.task {
            Some(Task::Backup { to }) => Launch::Backup { data_dir: cli.data_dir, to },
            None => Launch::Serve(Box::new(Config::from_cli(cli))),
        }
    }
}

impl Config {
    fn from_cli(cli: Cli) -> Config {
        Config {
            http: HttpConfig {
                bind: cli.bind,
                workers: cli.workers.unwrap_or_else(cores).max(1),
                max_body_bytes: cli.max_body_bytes,
                drain_timeout: Duration::from_secs(5),
                trusted_proxies: cli.trusted_proxies,
            },
            ws: WsConfig {
                heartbeat_interval: Duration::from_secs(10),
                client_timeout: Duration::from_secs(30),
                max_frame_bytes: cli.max_body_bytes,
                agent_queue: 8192,
                visitor_queue: 256,
                max_connections: cli.max_connections,
                allowed_origins: cli.allowed_origins,
            },
            limits: Limits {
                max_message_chars: cli.max_message_chars,
                bot_input_pause: Duration::from_secs(cli.bot_input_pause_s),
                mail: cli.smtp_url.is_some(),
            },
            auth: AuthConfig {
                max_login_failures: 5,
                login_window: Duration::from_secs(60),
                token_idle_timeout: Duration::from_secs(cli.token_idle_hours * 3600),
                visitor_sessions_per_minute: cli.visitor_sessions_per_minute,
            },
            data_dir: cli.data_dir,
            persistence: PersistConfig {
                snapshot_interval: (cli.snapshot_interval_s > 0).then(|| Duration::from_secs(cli.snapshot_interval_s)),
                fsync: cli.fsync,
                fsync_interval: Duration::from_millis(cli.fsync_interval_ms),
            },
            admin_password: cli.admin_password,
            demo: cli.demo,
            mail: cli.smtp_url.map(|url| MailConfig { url, from: cli.smtp_from }),
            webhooks: WebhookConfig {
                allow_private: cli.webhook_allow_private,
                timeout: Duration::from_secs(cli.webhook_timeout_s.max(1)),
            },
            actor_threads: cli.actor_threads.unwrap_or_else(cores),
            retention_days: cli.retention_days,
        }
    }

    /// Defaults for an in-process test server: any free port, a known admin
    /// password, short timeouts, one worker so tests stay light.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        Config {
            http: HttpConfig {
                bind: ([127, 0, 0, 1], 0).into(),
                workers: 1,
                max_body_bytes: 64 * 1024,
                drain_timeout: Duration::from_secs(1),
                trusted_proxies: TrustedProxies::default(),
            },
            ws: WsConfig {
                // Test sockets often sit unread while a test works elsewhere,
                // and tungstenite pongs only while reading: on a busy machine
                // 2 s went by without a pong. The test of silent clients sets its own.
                heartbeat_interval: Duration::from_secs(2),
                client_timeout: Duration::from_secs(10),
                max_frame_bytes: 64 * 1024,
                agent_queue: 8192,
                visitor_queue: 256,
                max_connections: 1000,
                allowed_origins: Vec::new(),
            },
            limits: Limits { max_message_chars: 4000, bot_input_pause: Duration::from_millis(300), mail: false },
            auth: AuthConfig {
                max_login_failures: 5,
                login_window: Duration::from_secs(60),
                token_idle_timeout: Duration::from_secs(3600),
                visitor_sessions_per_minute: 0,
            },
            data_dir,
            persistence: PersistConfig { snapshot_interval: None, fsync: FsyncMode::Always, fsync_interval: Duration::from_millis(50) },
            admin_password: Some("admin-pass".into()),
            demo: false,
            mail: None,
            webhooks: WebhookConfig { allow_private: true, timeout: Duration::from_secs(2) },
            actor_threads: 2,
            retention_days: None,
        }
    }
}
