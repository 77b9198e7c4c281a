//! `layercake serve DIR`: a small model server for TF.js clients (axum on tokio).
//!
//! - `GET /models/<name>/model.json` and `GET /models/<name>/<weight file>` serve `DIR/<name>/`
//!   (`application/json` / `application/octet-stream`, `Content-Length`, CORS headers).
//! - `POST /models/<name>` accepts what `tf.io.http` sends: `multipart/form-data` with parts
//!   `model.json` and `model.weights.bin`. The parts are streamed into a temporary sibling of
//!   `DIR/<name>`, the result is validated as a model (its manifest must match the weights it
//!   came with), and only then switched in atomically: an upload cut off or malformed leaves
//!   the old model untouched and nothing behind.
//! - Names and file paths are checked component by component (letters, digits, `.`, `_`, `-`;
//!   not starting with `.`), multipart filenames are never used as paths, and served files
//!   must resolve inside `DIR/<name>` (no symbolic link out): no request can read or write
//!   outside `DIR`.

use crate::atomic::StagedDir;
use crate::error::{Error, Result};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: usize,
    /// Stop on Ctrl-C (the CLI); otherwise only [`Server::stop`] / drop stops it.
    pub stop_on_ctrl_c: bool,
    /// Print one line per save and per refused request to stderr.
    pub log: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_upload_bytes: 8 << 30,
            stop_on_ctrl_c: false,
            log: false,
        }
    }
}

/// A running server (its own thread and tokio runtime); stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

struct Root {
    dir: PathBuf,
    log: bool,
}

impl Server {
    /// Serve the model directories under `dir` on `addr` (port 0 picks a free port; see
    /// [`Server::addr`]). Binding happens before this returns.
    pub fn start(dir: &Path, addr: SocketAddr, opts: ServeOptions) -> Result<Server> {
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if !dir.is_dir() {
            return Err(Error::Usage(format!("{}: not a directory", dir.display())));
        }
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Usage(format!("{addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Usage(format!("{addr}: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let root = Arc::new(Root { dir, log: opts.log });
        let thread = std::thread::spawn(move || run(listener, root, opts, rx));
        Ok(Server {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/models/<name>`: where `tf.io.http` saves the model `name`; its model.json is
    /// at `…/model.json`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/models/{name}", self.addr)
    }

    /// Block until the server stops (Ctrl-C with [`ServeOptions::stop_on_ctrl_c`]).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    /// Stop accepting, finish the requests in flight, and wait.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown.take().map(|tx| tx.send(()));
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r.map_err(|e| Error::Usage(format!("server on {}: {e}", self.addr))),
            Some(Err(_)) => Err(Error::Usage(format!("server on {} panicked", self.addr))),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.take().map(|tx| tx.send(()));
        let _ = self.join();
    }
}

fn run(
    listener: std::net::TcpListener,
    root: Arc<Root>,
    opts: ServeOptions,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = router(root, &opts);
        let ctrl_c = opts.stop_on_ctrl_c;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                if ctrl_c {
                    tokio::select! {
                        _ = stop => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                } else {
                    let _ = stop.await;
                }
            })
            .await
    })
}

/// One line on stderr (with [`ServeOptions::log`]); a closed stderr is ignored, never a panic.
fn log(root: &Root, line: &str) {
    if root.log {
        let _ = writeln!(std::io::stderr(), "layercake serve: {line}");
    }
}

/// The routes, over `root`.
fn router(root: Arc<Root>, opts: &ServeOptions) -> Router {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(tower_http::cors::Any);
    Router::new()
        .route("/models/{name}/{*file}", get(get_file))
        .route("/models/{name}", post(post_model))
        .layer(DefaultBodyLimit::max(opts.max_upload_bytes))
        .layer(cors)
        .with_state(root)
}

/// Handle one request in-process (no socket) against the models in `dir`: the fuzzing entry
/// point for the upload path (`crate::fuzzing::serve_upload`). Returns the status and body.
pub fn handle(dir: &Path, request: axum::http::Request<Body>) -> (StatusCode, Vec<u8>) {
    use tower::ServiceExt;
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    });
    let root = Arc::new(Root {
        dir: dir.to_path_buf(),
        log: false,
    });
    let app = router(root, &ServeOptions::default());
    rt.block_on(async move {
        let resp = app.oneshot(request).await.expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (status, body)
    })
}

/// A path component a request may name: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn refuse(root: &Root, status: StatusCode, message: String) -> Response {
    log(root, &format!("{status}: {message}"));
    (status, message).into_response()
}

async fn get_file(
    State(root): State<Arc<Root>>,
    UrlPath((name, file)): UrlPath<(String, String)>,
) -> Response {
    let parts: Vec<&str> = file.split('/').collect();
    if !safe_component(&name) || !parts.iter().all(|p| safe_component(p)) {
        return refuse(
            &root,
            StatusCode::BAD_REQUEST,
            format!("refused path '{name}/{file}'"),
        );
    }
    let model_dir = root.dir.join(&name);
    let path = parts.iter().fold(model_dir.clone(), |p, c| p.join(c));
    // Resolve links: the file must stay inside the model's directory.
    let inside = match (path.canonicalize(), model_dir.canonicalize()) {
        (Ok(p), Ok(d)) if p.starts_with(&d) && p.is_file() => p,
        _ => {
            return refuse(
                &root,
                StatusCode::NOT_FOUND,
                format!("no file '{name}/{file}'"),
            )
        }
    };
    let Ok(f) = tokio::fs::File::open(&inside).await else {
        return refuse(
            &root,
            StatusCode::NOT_FOUND,
            format!("no file '{name}/{file}'"),
        );
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let kind = if file.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 << 10));
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response()
}

/// The multipart parts `tf.io.http` sends, and the file each becomes.
const PARTS: [&str; 2] = ["model.json", "model.weights.bin"];

async fn post_model(
    State(root): State<Arc<Root>>,
    UrlPath(name): UrlPath<String>,
    multipart: Multipart,
) -> Response {
    if !safe_component(&name) {
        return refuse(
            &root,
            StatusCode::BAD_REQUEST,
            format!("refused model name '{name}'"),
        );
    }
    match receive(&root, &name, multipart).await {
        Ok(bytes) => {
            log(&root, &format!("saved '{name}' ({bytes} bytes)"));
            let body = serde_json::json!({"saved": name, "bytes": bytes}).to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err((status, message)) => refuse(&root, status, format!("upload to '{name}': {message}")),
    }
}

type Refusal = (StatusCode, String);

/// Stream the parts into a staged directory, validate, switch in. Returns the bytes received.
async fn receive(
    root: &Root,
    name: &str,
    mut multipart: Multipart,
) -> std::result::Result<u64, Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let internal = |m: String| (StatusCode::INTERNAL_SERVER_ERROR, m);
    let dst = root.dir.join(name);
    if dst.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        return Err((
            StatusCode::CONFLICT,
            "exists and is not a model directory".into(),
        ));
    }
    let staged = StagedDir::new(&dst).map_err(|e| internal(e.to_string()))?;
    let mut seen = Vec::new();
    let mut total = 0u64;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("multipart: {e}")))?
    {
        let part = field.name().unwrap_or("").to_string();
        let Some(file) = PARTS.iter().find(|p| **p == part) else {
            return Err(bad(format!(
                "unexpected part '{part}' (expected model.json and model.weights.bin)"
            )));
        };
        if seen.contains(file) {
            return Err(bad(format!("part '{part}' sent twice")));
        }
        seen.push(*file);
        let path = staged.path().join(file);
        let mut out = std::fs::File::create(&path).map_err(|e| internal(format!("{file}: {e}")))?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| bad(format!("part '{part}' cut off after {total} bytes: {e}")))?
        {
            total += chunk.len() as u64;
            out.write_all(&chunk)
                .map_err(|e| internal(format!("{file}: {e}")))?;
        }
        out.flush().map_err(|e| internal(format!("{file}: {e}")))?;
    }
    if !seen.contains(&"model.json") {
        return Err(bad("no 'model.json' part".into()));
    }
    // The manifest must match the weights that came with it.
    crate::format::tfjs::read(&staged.path().join("model.json"))
        .map_err(|e| bad(format!("not a valid model: {e}")))?;
    let keep = |f: &str| !PARTS.contains(&f) && !is_old_weight_file(&dst, f);
    tokio::task::block_in_place(|| staged.commit(keep, true))
        .map_err(|e| internal(e.to_string()))?;
    Ok(total)
}

/// True for a file of the model now in `dir` (replaced as a whole by a new upload).
fn is_old_weight_file(dir: &Path, file: &str) -> bool {
    crate::format::tfjs::read_model_json(&dir.join("model.json"))
        .ok()
        .and_then(|f| f.get("weightsManifest").cloned())
        .and_then(|m| m.as_array().cloned())
        .into_iter()
        .flatten()
        .flat_map(|g| {
            g.get("paths")
                .and_then(|p| p.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .any(|p| p.as_str().map(|s| s.trim_start_matches("./")) == Some(file))
}

#[cfg(test)]
mod tests {
    use super::safe_component;

    #[test]
    fn only_plain_names_are_safe() {
        for ok in ["model.json", "group1-shard1of2.bin", "my_model", "v1.2"] {
            assert!(safe_component(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", ".hidden", "a/b", "a\\b", "%2e%2e", "a b", "a\0b", "é",
        ] {
            assert!(!safe_component(bad), "{bad:?}");
        }
    }
}
