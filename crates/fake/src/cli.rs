//! `orgmirror fake-api`: a fake served until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use crate::options::{FakeOptions, FakeProfile};
use crate::server::FakeServer;

/// `orgmirror fake-api`: serves until Ctrl-C or SIGTERM, after printing the base URL, the
/// ids and the credentials, one `key=value` a line.
pub async fn serve_cli(listen: SocketAddr, opts: FakeOptions) -> std::io::Result<()> {
    // `Stdout`, not a lock held across the wait: the future stays `Send`.
    serve_until(listen, opts, &mut std::io::stdout(), wait_for_signal()).await
}

/// The body of [`serve_cli`] with the output and the stop signal as parameters.
pub(crate) async fn serve_until<W: std::io::Write + Send>(
    listen: SocketAddr,
    opts: FakeOptions,
    out: &mut W,
    stop: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let server = FakeServer::start(opts.clone(), listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("fake-api: cannot listen on {listen}: {e}"),
        )
    })?;
    let users = server.handle().counts().users;
    writeln!(out, "base_url={}", server.base_url())?;
    writeln!(out, "organization_id={}", opts.organization_id)?;
    writeln!(out, "workspace_id={}", opts.workspace_id)?;
    writeln!(out, "api_token={}", opts.token)?;
    if opts.profile == FakeProfile::Focus {
        writeln!(out, "api_key={}", opts.api_key)?;
    }
    writeln!(out, "email={}", opts.email)?;
    writeln!(out, "password={}", opts.password)?;
    writeln!(out, "users={users}")?;
    let profile = match opts.profile {
        FakeProfile::Focus => "focus",
        FakeProfile::Seed => "seed",
    };
    writeln!(out, "profile={profile}")?;
    // Scripts read these lines before the first request: they must not sit in a buffer.
    out.flush()?;
    stop.await?;
    drop(server);
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
