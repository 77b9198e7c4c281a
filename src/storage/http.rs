//! HTTP(S) load and save, compatible with TF.js's `tf.io.http`:
//! - load from `…/model.json`: weight files are fetched relative to model.json's URL with its
//!   query string appended (as TF.js does), each bounded by the bytes the manifest leaves for it
//!   (a server that sends more is an error, checked on `Content-Length` and while reading);
//!   every read has a timeout (a stalled server is an error), transient failures (connection
//!   errors, timeouts, 5xx, 429) are retried a bounded number of times, and progress is reported.
//! - save: one `POST` of `multipart/form-data` with parts `model.json` and `model.weights.bin`
//!   (the weights spooled through a temporary file, not held in memory).

use super::{ModelSink, ModelSource};
use crate::error::{Error, Result};
use crate::format::store::Backing;
use crate::format::Artifacts;
use reqwest::blocking::{multipart, Client, Response};
use reqwest::Url;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

/// Timeouts and retries.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Longest wait for any one read or write (a stalled server fails after this).
    pub timeout: Duration,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// Further attempts after a transient failure.
    pub retries: u32,
    /// Pause before the first retry (doubled for each further one).
    pub retry_delay: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 3,
            retry_delay: Duration::from_millis(250),
        }
    }
}

/// Open the model whose model.json is at `url`.
pub fn open(url: &str, opts: &HttpOptions) -> Result<Artifacts> {
    open_with_progress(url, opts, &mut |_, _| {})
}

/// As [`open`], calling `progress(bytes_read, bytes_declared)` as weight bytes arrive.
pub fn open_with_progress(
    url: &str,
    opts: &HttpOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Artifacts> {
    let mut src = HttpSource::new(url, opts.clone())?;
    src.progress = Some(progress);
    super::read(&mut src)
}

fn client(url: &str, opts: &HttpOptions) -> Result<Client> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout)
        .build()
        .map_err(|e| Error::format(url, format!("HTTP client: {e}")))
}

fn parse_url(url: &str) -> Result<Url> {
    Url::parse(url).map_err(|e| Error::Usage(format!("{url}: not a valid URL: {e}")))
}

/// Why an attempt failed, and whether trying again may help.
struct Failure {
    message: String,
    transient: bool,
}

impl Failure {
    fn of(e: &reqwest::Error) -> Failure {
        Failure {
            message: describe(e),
            transient: e.is_timeout() || e.is_connect() || e.is_request() || e.is_body(),
        }
    }
    fn fatal(message: String) -> Failure {
        Failure {
            message,
            transient: false,
        }
    }
}

/// A reqwest error with its causes (the top level alone often says only "error sending request").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    if text.contains("operation timed out") || text.contains("TimedOut") {
        text.push_str(" (the server stalled)");
    }
    text
}

/// Run `attempt` until it succeeds, fails for good, or the retries are spent.
fn with_retries<T>(
    opts: &HttpOptions,
    what: &Path,
    mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
) -> Result<T> {
    let mut delay = opts.retry_delay;
    let mut tries = 0;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(f) if f.transient && tries < opts.retries => {
                tries += 1;
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(f) => {
                let after = if tries > 0 {
                    format!(" (after {} attempts)", tries + 1)
                } else {
                    String::new()
                };
                return Err(Error::format(what, format!("{}{after}", f.message)));
            }
        }
    }
}

/// GET `url` and read at most `limit` bytes of body.
fn fetch(
    client: &Client,
    url: &Url,
    limit: u64,
    progress: &mut dyn FnMut(u64),
) -> std::result::Result<Vec<u8>, Failure> {
    read_bounded(request(client, url, limit)?, limit, progress)
}

/// GET `url`: a success status and a `Content-Length` (if any) within `limit`.
fn request(client: &Client, url: &Url, limit: u64) -> std::result::Result<Response, Failure> {
    let resp = client
        .get(url.clone())
        .send()
        .map_err(|e| Failure::of(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Failure {
            message: format!("HTTP {status}"),
            transient: status.is_server_error() || status.as_u16() == 429,
        });
    }
    if let Some(len) = resp.content_length().filter(|&n| n > limit) {
        return Err(Failure::fatal(format!(
            "the server declares {len} bytes (Content-Length), more than the {limit} the manifest leaves for this file"
        )));
    }
    Ok(resp)
}

/// A response body read as it arrives: at most `limit` bytes, exactly `Content-Length` when
/// declared, `progress` told of every chunk. Whole-file reads ([`read_bounded`]) and streaming
/// reads (its `Read` impl) share it.
struct BoundedBody<'a> {
    resp: Response,
    url: String,
    limit: u64,
    got: u64,
    declared: Option<u64>,
    progress: Box<dyn FnMut(u64) + 'a>,
}

impl<'a> BoundedBody<'a> {
    fn new(resp: Response, limit: u64, progress: Box<dyn FnMut(u64) + 'a>) -> Self {
        BoundedBody {
            url: resp.url().to_string(),
            declared: resp.content_length(),
            resp,
            limit,
            got: 0,
            progress,
        }
    }

    /// The next bytes into `buf`; 0 at a body that ended where it should.
    fn next(&mut self, buf: &mut [u8]) -> std::result::Result<usize, Failure> {
        let n = self.resp.read(buf).map_err(|e| Failure {
            message: format!(
                "reading the body after {} bytes: {}",
                self.got,
                describe(&e)
            ),
            transient: true,
        })?;
        if n == 0 {
            return match self.declared {
                Some(len) if len != self.got => Err(Failure {
                    message: format!("the body ended after {} of {len} bytes", self.got),
                    transient: true,
                }),
                _ => Ok(0),
            };
        }
        self.got += n as u64;
        if self.got > self.limit {
            return Err(Failure::fatal(format!(
                "the server sent more than the {} bytes the manifest leaves for this file",
                self.limit
            )));
        }
        (self.progress)(n as u64);
        Ok(n)
    }
}

impl Read for BoundedBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.next(buf)
            .map_err(|f| std::io::Error::other(format!("{}: {}", self.url, f.message)))
    }
}

fn read_bounded(
    resp: Response,
    limit: u64,
    progress: &mut dyn FnMut(u64),
) -> std::result::Result<Vec<u8>, Failure> {
    let mut reader = BoundedBody::new(resp, limit, Box::new(progress));
    let capacity = reader.declared.unwrap_or(0).min(limit) as usize;
    let mut body = Vec::with_capacity(capacity);
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        match reader.next(&mut chunk)? {
            0 => return Ok(body),
            n => body.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A model served over HTTP(S).
pub struct HttpSource<'p> {
    client: Client,
    url: Url,
    origin: PathBuf,
    opts: HttpOptions,
    done: u64,
    total: u64,
    /// Called with (bytes read, bytes declared) as weight bytes arrive.
    pub progress: Option<&'p mut dyn FnMut(u64, u64)>,
}

impl HttpSource<'_> {
    /// A source for the model.json at `url`.
    pub fn new(url: &str, opts: HttpOptions) -> Result<Self> {
        Ok(HttpSource {
            client: client(url, &opts)?,
            url: parse_url(url)?,
            origin: PathBuf::from(url),
            opts,
            done: 0,
            total: 0,
            progress: None,
        })
    }

    /// The URL of weight file `entry`: relative to model.json's, with its query string.
    fn weight_url(&self, entry: &str) -> Result<Url> {
        let mut url = self
            .url
            .join(entry)
            .map_err(|e| Error::format(&self.origin, format!("weight path '{entry}': {e}")))?;
        url.set_query(self.url.query());
        // Checked entries cannot leave model.json's directory; this holds that on the URL too.
        let dir = &self.url.path()[..self.url.path().rfind('/').map_or(0, |i| i + 1)];
        if url.origin() != self.url.origin() || !url.path().starts_with(dir) {
            return Err(Error::UnsafePath {
                path: self.origin.clone(),
                entry: entry.to_string(),
                reason: format!("it resolves to {url}, outside model.json's directory"),
            });
        }
        Ok(url)
    }
}

impl ModelSource for HttpSource<'_> {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn model_json(&mut self, limit: u64) -> Result<Vec<u8>> {
        let (client, url) = (&self.client, &self.url);
        with_retries(&self.opts, &self.origin, || {
            fetch(client, url, limit, &mut |_| {})
        })
    }

    fn begin(&mut self, total_bytes: u64) {
        self.total = total_bytes;
    }

    fn weight_file(&mut self, entry: &str, limit: u64) -> Result<Backing> {
        let url = self.weight_url(entry)?;
        let named = PathBuf::from(url.as_str());
        let (client, total, start) = (&self.client, self.total, self.done);
        let mut progress = self.progress.take();
        let result = with_retries(&self.opts, &named, || {
            let mut got = 0;
            fetch(client, &url, limit, &mut |n| {
                got += n;
                if let Some(p) = progress.as_mut() {
                    p(start + got, total);
                }
            })
        });
        self.progress = progress;
        let bytes = result?;
        self.done += bytes.len() as u64;
        Ok(Backing::Owned(bytes))
    }

    fn weight_reader(&mut self, entry: &str, limit: u64) -> Result<Box<dyn Read + '_>> {
        let url = self.weight_url(entry)?;
        let named = PathBuf::from(url.as_str());
        // Retried until the body starts; a body failing midway is an error (its bytes are gone).
        let resp = with_retries(&self.opts, &named, || request(&self.client, &url, limit))?;
        let (done, total, progress) = (&mut self.done, self.total, &mut self.progress);
        let report = move |n: u64| {
            *done += n;
            if let Some(p) = progress.as_mut() {
                p(*done, total);
            }
        };
        Ok(Box::new(BoundedBody::new(resp, limit, Box::new(report))))
    }
}

/// Saves a model to an HTTP endpoint as `tf.io.http` does: on commit, one `POST` of
/// `multipart/form-data` with parts `model.json` and `model.weights.bin`.
pub struct HttpSink {
    client: Client,
    url: Url,
    origin: PathBuf,
    opts: HttpOptions,
    model_json: Arc<Mutex<Vec<u8>>>,
    weights: tempfile::NamedTempFile,
}

impl HttpSink {
    /// A sink posting to `url`.
    pub fn new(url: &str, opts: HttpOptions) -> Result<HttpSink> {
        let weights =
            tempfile::NamedTempFile::new().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Ok(HttpSink {
            client: client(url, &opts)?,
            url: parse_url(url)?,
            origin: PathBuf::from(url),
            opts,
            model_json: Default::default(),
            weights,
        })
    }

    fn form(&self) -> std::result::Result<multipart::Form, Failure> {
        let json = self
            .model_json
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let weights = self
            .weights
            .reopen()
            .map_err(|e| Failure::fatal(format!("spooled weights: {e}")))?;
        let len = weights
            .metadata()
            .map_err(|e| Failure::fatal(format!("spooled weights: {e}")))?
            .len();
        let mime = |p: multipart::Part, m: &str| {
            p.mime_str(m)
                .map_err(|e| Failure::fatal(format!("multipart: {e}")))
        };
        let json = mime(
            multipart::Part::bytes(json).file_name("model.json"),
            "application/json",
        )?;
        let weights = mime(
            multipart::Part::reader_with_length(weights, len).file_name("model.weights.bin"),
            "application/octet-stream",
        )?;
        Ok(multipart::Form::new()
            .part("model.json", json)
            .part("model.weights.bin", weights))
    }
}

/// model.json's bytes, collected for the form.
struct JsonPart(Arc<Mutex<Vec<u8>>>);

impl Write for JsonPart {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        v.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ModelSink for HttpSink {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>> {
        match name.trim_start_matches("./") {
            "model.json" => Ok(Box::new(JsonPart(self.model_json.clone()))),
            "model.weights.bin" => {
                let f = self
                    .weights
                    .reopen()
                    .map_err(|e| Error::io(self.weights.path(), e))?;
                Ok(Box::new(std::io::BufWriter::with_capacity(1 << 20, f)))
            }
            other => Err(Error::Usage(format!(
                "{}: an HTTP save sends model.json and model.weights.bin, not '{other}'",
                self.url
            ))),
        }
    }

    fn commit(self: Box<Self>) -> Result<()> {
        with_retries(&self.opts, &self.origin, || {
            let form = self.form()?;
            let resp = self
                .client
                .post(self.url.clone())
                .multipart(form)
                .send()
                .map_err(|e| Failure::of(&e))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let body = resp.text().unwrap_or_default();
            Err(Failure {
                message: format!("HTTP {status}: {}", body.trim()),
                transient: status.is_server_error() || status.as_u16() == 429,
            })
        })
    }
}
