//! The server: started and stopped, `fake-api`'s output, bodies too large, the request log.

use super::*;

#[test]
fn background_server_serves_and_stops_on_drop() {
    let server = FakeServer::start_background(opts(5)).expect("starts");
    let addr = server.addr();
    let url = format!("{}{ROLES}", server.base_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        client()
            .get(&url)
            .bearer_auth("demo-token")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.ok(), Some(200));
    assert_eq!(server.handle().request_count(), 1);
    drop(server);
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    assert!(refused.is_err(), "the listener is closed after drop");
}

/// A writer the test can read while the server still runs.
#[derive(Clone, Default)]
struct SharedOut(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn serve_cli_prints_key_value_lines_then_serves_until_stopped() {
    let out = SharedOut::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut writer = out.clone();
    let task = tokio::spawn(async move {
        let addr: SocketAddr = ANY_PORT.parse().expect("literal address");
        serve_until(addr, opts(7), &mut writer, async move {
            let _ = stopped.await;
            Ok(())
        })
        .await
    });
    let text = loop {
        let text =
            String::from_utf8_lossy(&out.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        if text.contains("profile=") {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "base_url",
            "organization_id",
            "workspace_id",
            "api_token",
            "email",
            "password",
            "users",
            "profile"
        ]
    );
    for line in [
        "organization_id=1001",
        "workspace_id=2001",
        "api_token=demo-token",
        "email=demo@example.com",
        "password=demo-password",
        "users=7",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in {text}");
    }
    let base = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("base_url="))
        .expect("base_url");
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api"),
        "{base}"
    );
    let served = client()
        .get(format!("{base}{ROLES}"))
        .basic_auth("demo-token", Some("api_token"))
        .send()
        .await
        .expect("serving");
    assert_eq!(served.status().as_u16(), 200);
    let _ = stop.send(());
    task.await.expect("joined").expect("served");
    assert!(
        client().get(format!("{base}{ROLES}")).send().await.is_err(),
        "stopped"
    );
}

#[tokio::test]
async fn oversized_request_bodies_are_refused_and_logged() {
    let server = start(opts(5)).await;
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let a = client()
        .post(format!("{}{GROUPS}", server.base_url()))
        .basic_auth("demo-token", Some("api_token"))
        .body(big)
        .send()
        .await
        .expect("sent");
    assert_eq!(a.status().as_u16(), 413);
    assert_eq!(server.handle().requests()[0].status, 413);
}

#[test]
fn the_request_log_keeps_the_newest_requests_and_counts_them_all() {
    let h = FakeHandle::new(&opts(3));
    let at = std::time::Instant::now();
    let request = |i: usize| LoggedRequest {
        at,
        method: "GET".into(),
        path: format!("/{i}"),
        query: String::new(),
        status: 200,
    };
    for i in 0..REQUEST_LOG_MAX + 10 {
        let mut s = h.lock();
        s.served += 1;
        s.recorder.log(request(i));
    }
    assert_eq!(h.request_count(), REQUEST_LOG_MAX + 10);
    let log = h.requests();
    assert_eq!(log.len(), REQUEST_LOG_MAX / 2 + 10);
    assert_eq!(
        log.last().map(|r| r.path.as_str()),
        Some(format!("/{}", REQUEST_LOG_MAX + 9).as_str())
    );
    h.clear_requests();
    assert_eq!(h.request_count(), 0);
}
