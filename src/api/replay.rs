//! `orgmirror fake-api --replay DIR`: serves a recording made by `sync --capture DIR` back,
//! so that a real organization's answers become an offline fixture.
//!
//! A request is matched by method, path (below `/api`) and query (compared decoded, pair by
//! pair in order). Repeated requests get the recorded answers in recorded order, and the
//! last one again once they run out (so a second sync replays too). A request that was not
//! recorded gets a 404 JSON error naming it. Credentials are not checked: the recording
//! holds none.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;

use super::capture::{self, Exchange};

/// Method, path below `/api`, and the decoded query pairs.
type Key = (String, String, Vec<(String, String)>);

/// The recorded answers and how many of each request were served.
struct Replay {
    answers: HashMap<Key, Vec<Exchange>>,
    served: Mutex<HashMap<Key, usize>>,
}

impl Replay {
    fn new(exchanges: Vec<Exchange>) -> Replay {
        let mut answers: HashMap<Key, Vec<Exchange>> = HashMap::new();
        for exchange in exchanges {
            let key = key_of(&exchange.method, &exchange.path, &exchange.query);
            answers.entry(key).or_default().push(exchange);
        }
        Replay {
            answers,
            served: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to the `n`-th request like `key`: the `n`-th recorded, else the last.
    fn answer(&self, key: &Key) -> Option<&Exchange> {
        let recorded = self.answers.get(key)?;
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let n = served.entry(key.clone()).or_insert(0);
        let answer = recorded.get(*n).or_else(|| recorded.last());
        *n += 1;
        answer
    }
}

fn key_of(method: &str, path: &str, query: &str) -> Key {
    let pairs = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (method.to_ascii_uppercase(), path.to_string(), pairs)
}

async fn handle(State(replay): State<Arc<Replay>>, request: Request) -> Response {
    let method = request.method().as_str().to_string();
    let full_path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let found = full_path
        .strip_prefix("/api")
        .filter(|p| p.starts_with('/'))
        .and_then(|path| replay.answer(&key_of(&method, path, &query)));
    match found {
        Some(exchange) => recorded_response(exchange),
        None => not_recorded(&capture::request_line(&method, &full_path, &query)),
    }
}

fn recorded_response(exchange: &Exchange) -> Response {
    let mut response = Response::new(Body::from(exchange.body.clone()));
    *response.status_mut() =
        StatusCode::from_u16(exchange.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &exchange.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn not_recorded(request_line: &str) -> Response {
    let body = serde_json::json!({
        "error": "not_recorded",
        "error_description": format!("{request_line} is not in the recording being replayed"),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A recording read from its directory, ready to serve.
pub struct Recording(Vec<Exchange>);

impl Recording {
    /// Reads the recording `sync --capture` wrote into `dir`.
    pub fn read(dir: &Path) -> Result<Recording, capture::CaptureError> {
        capture::read_dir(dir).map(Recording)
    }
}

/// `orgmirror fake-api --replay DIR`: serves the recording until Ctrl-C or SIGTERM, after
/// printing `base_url=…`, the organization id the recording asks for, and how many answers
/// it holds, one `key=value` a line.
pub async fn serve_cli(listen: SocketAddr, recording: Recording) -> std::io::Result<()> {
    let exchanges = recording.0;
    let organization_id = exchanges.iter().find_map(|e| {
        e.path
            .strip_prefix("/organizations/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string)
    });
    let count = exchanges.len();
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("fake-api: cannot listen on {listen}: {e}"),
        )
    })?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::new(Replay::new(exchanges)));
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "base_url=http://{addr}/api")?;
        if let Some(id) = organization_id {
            writeln!(out, "organization_id={id}")?;
        }
        writeln!(out, "answers={count}")?;
        // Scripts read these lines before the first request.
        out.flush()?;
    }
    tokio::select! {
        served = axum::serve(listener, app).into_future() => served?,
        stopped = wait_for_signal() => stopped?,
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(query: &str, status: u16, body: &str) -> Exchange {
        Exchange {
            method: "GET".into(),
            path: "/organizations/1/users".into(),
            query: query.into(),
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn repeated_requests_get_the_recorded_answers_in_order_then_the_last() {
        let replay = Replay::new(vec![
            exchange("page=1", 503, "busy"),
            exchange("page=2", 200, "two"),
            exchange("page=1", 200, "one"),
        ]);
        let page1 = key_of("GET", "/organizations/1/users", "page=1");
        let bodies: Vec<_> = (0..3)
            .map(|_| replay.answer(&page1).map(|e| e.body.clone()))
            .collect();
        assert_eq!(
            bodies,
            vec![
                Some(b"busy".to_vec()),
                Some(b"one".to_vec()),
                Some(b"one".to_vec())
            ]
        );
        // The query is compared decoded: `%5B%5D` is `[]`.
        let encoded = Replay::new(vec![exchange("ids[]=1&x=a+b", 200, "")]);
        assert!(encoded
            .answer(&key_of(
                "GET",
                "/organizations/1/users",
                "ids%5B%5D=1&x=a%20b"
            ))
            .is_some());
        assert!(encoded
            .answer(&key_of("GET", "/organizations/1/users", "x=a+b&ids[]=1"))
            .is_none());
    }
}
