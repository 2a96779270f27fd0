//! Stopping: one signal future for Ctrl-C and SIGTERM, and the order in which
//! the server winds down.

use std::future::Future;

use actix_rt::Arbiter;
use actix_web::dev::Server;
use tokio::sync::watch;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The ordered stop:
/// 1. tell every WebSocket session to close (clients see close code 1001 and reconnect elsewhere);
/// 2. stop accepting and let in-flight requests finish, at most `http.drain_timeout`;
/// 3. write a last snapshot (`last_snapshot`), so the next start replays no journal;
/// 4. stop the actor threads.
///
/// `server` must be driven while it stops (it runs its own command loop), so it is awaited here.
///
/// # Errors
/// When the HTTP server fails while stopping.
pub async fn stop(
    sessions: &watch::Sender<bool>,
    server: Server,
    last_snapshot: impl Future<Output = ()>,
    arbiters: Vec<Arbiter>,
) -> std::io::Result<()> {
    tracing::info!("shutting down");
    let _ = sessions.send(true);
    let handle = server.handle();
    let (res, ()) = tokio::join!(server, handle.stop(true));
    last_snapshot.await;
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    tracing::info!("stopped");
    res
}
