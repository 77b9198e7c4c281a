//! Sources and sinks: every built-in one passes the same round trip on every fixture; HTTP loads
//! are bounded, time out and retry; `layercake serve` saves atomically and never lets a name
//! or a multipart filename reach outside its directory; real TF.js loads from it and saves
//! into it. Loopback only.

mod common;

use common::*;
use layercake::format::{self, Artifacts, SaveOptions, Target};
use layercake::model::{read_bundle, Model};
use layercake::serve::{ServeOptions, Server};
use layercake::storage::http::{HttpOptions, HttpSink, HttpSource};
use layercake::storage::{self, MemoryModel};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Same weights (names, shapes, dtypes, decoded bytes) and the same topology.
fn assert_same_model(a: &Artifacts, b: &Artifacts, what: &str) {
    assert_same_values(a, b, what);
    let topology = |x: &Artifacts| x.spec.topology().cloned();
    assert_eq!(topology(a), topology(b), "{what}: topology");
}

fn server(dir: &Path) -> Server {
    Server::start(dir, "127.0.0.1:0".parse().unwrap(), ServeOptions::default()).unwrap()
}

fn quick() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_secs(2),
        retries: 1,
        retry_delay: Duration::from_millis(20),
    }
}

#[test]
fn every_source_and_sink_round_trips_every_fixture() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let srv = server(&served);
    for name in fixtures() {
        let a = open_fixture(&name);
        // Local directory, in the source's own style.
        let dir = root.path().join(&name);
        format::save(&dir, &a.spec, &a, SaveOptions::default()).unwrap();
        assert_same_model(&a, &layercake::open(&dir).unwrap(), &format!("{name}: dir"));
        // Safetensors file.
        let st = root.path().join(format!("{name}.safetensors"));
        format::save(&st, &a.spec, &a, SaveOptions::default()).unwrap();
        assert_same_model(&a, &layercake::open(&st).unwrap(), &format!("{name}: st"));
        // Memory, TF.js and safetensors.
        for target in [None, Some(Target::Safetensors)] {
            let opts = SaveOptions {
                target,
                ..Default::default()
            };
            let m = MemoryModel::save(&a.spec, &a, opts).unwrap();
            assert!(!m.is_empty());
            assert_same_model(
                &a,
                &m.open().unwrap(),
                &format!("{name}: memory {target:?}"),
            );
        }
        // HTTP: save into `layercake serve`, load back over HTTP.
        let url = srv.url(&name);
        storage::save(&url, &a.spec, &a, SaveOptions::default()).unwrap();
        let back = storage::open(&format!("{url}/model.json")).unwrap();
        assert_same_model(&a, &back, &format!("{name}: http"));
        assert_eq!(back.spec.layout.style, layercake::Style::Downloads);
    }
}

#[test]
fn a_model_loaded_over_http_predicts_as_tfjs_did() {
    let srv = server(&fixtures_dir());
    let mut seen = Vec::new();
    let url = format!("{}/model.json", srv.url("sharded"));
    let a = storage::http::open_with_progress(&url, &HttpOptions::default(), &mut |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    let total = a.spec.stored_bytes();
    assert_eq!(
        seen.last(),
        Some(&(total, total)),
        "progress ends at the declared total"
    );
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    let expected = fixtures_dir().join("sharded/expected.json");
    let inputs: Vec<_> = read_bundle(&expected, "inputs")
        .unwrap()
        .into_iter()
        .map(|n| n.tensor)
        .collect();
    let want = read_bundle(&expected, "outputs").unwrap();
    let got = Model::from_artifacts(a).unwrap().predict(&inputs).unwrap();
    let want: Vec<_> = want.into_iter().map(|n| n.tensor).collect();
    assert_outputs("prediction", &got, &want, tol(1e-5, 1e-4));
}

/// What a scripted test server does with a request for a weight file.
#[derive(Clone, Copy)]
enum Fault {
    /// Serve correctly.
    None,
    /// Declare the right length, send half, close.
    Truncate,
    /// Send the headers and then nothing.
    Stall,
    /// Send more than the file holds (no Content-Length: read until close).
    OverSend,
    /// Declare more than the file holds.
    OverDeclare,
    /// 503 on the first request for it, then serve correctly.
    FailOnce,
    /// 404.
    Missing,
}

/// A one-thread HTTP/1.1 server over fixture `name`, answering weight files per `fault`, and
/// recording each request's target.
fn scripted(name: &str, fault: Fault) -> (String, Arc<Mutex<Vec<String>>>) {
    let dir = fixtures_dir().join(name);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut failed = false;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let target = line.split(' ').nth(1).unwrap_or("").to_string();
            seen.lock().unwrap().push(target.clone());
            let file = target.split('?').next().unwrap().trim_start_matches('/');
            let Ok(body) = std::fs::read(dir.join(file)) else {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            };
            let ok = |s: &mut TcpStream, body: &[u8]| {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(body);
            };
            if file == "model.json" {
                ok(&mut s, &body);
                continue;
            }
            match fault {
                Fault::None => ok(&mut s, &body),
                Fault::Truncate => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body[..body.len() / 2]);
                }
                Fault::Stall => {
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    let _ = s.write_all(head.as_bytes());
                    std::thread::sleep(Duration::from_secs(3));
                }
                Fault::OverSend => {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
                    let _ = s.write_all(&body);
                    let _ = s.write_all(&vec![0u8; 4096]);
                }
                Fault::OverDeclare => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len() + 1
                    );
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body);
                }
                Fault::FailOnce if !failed => {
                    failed = true;
                    let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                }
                Fault::FailOnce => ok(&mut s, &body),
                Fault::Missing => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    (format!("http://{addr}/model.json"), log)
}

fn http_error(name: &str, fault: Fault) -> String {
    let (url, _) = scripted(name, fault);
    let err = storage::http::open(&url, &quick()).expect_err("the load must fail");
    err.to_string()
}

#[test]
fn weight_files_follow_model_json_url_and_its_query_string() {
    let (url, log) = scripted("cnn", Fault::None);
    let a = storage::http::open(&format!("{url}?token=abc&v=2"), &quick()).unwrap();
    assert_same_model(&open_fixture("cnn"), &a, "cnn over http");
    let log = log.lock().unwrap();
    assert_eq!(log[0], "/model.json?token=abc&v=2");
    assert_eq!(log[1], "/model.weights.bin?token=abc&v=2", "{log:?}");
}

#[test]
fn servers_that_misbehave_get_clear_errors() {
    let e = http_error("cnn", Fault::Truncate);
    assert!(
        e.contains("model.weights.bin") && e.contains("after 2 attempts"),
        "{e}"
    );
    let e = http_error("cnn", Fault::Stall);
    assert!(
        e.contains("model.weights.bin") && e.contains("stalled"),
        "{e}"
    );
    let e = http_error("cnn", Fault::OverSend);
    assert!(
        e.contains("sent more than the 3588 bytes the manifest leaves"),
        "{e}"
    );
    let e = http_error("cnn", Fault::OverDeclare);
    assert!(e.contains("declares 3589 bytes"), "{e}");
    let e = http_error("sharded", Fault::Missing);
    assert!(e.contains("group1-shard1of") && e.contains("404"), "{e}");
    // A transient failure is retried.
    let (url, log) = scripted("cnn", Fault::FailOnce);
    storage::http::open(&url, &quick()).unwrap();
    assert_eq!(log.lock().unwrap().len(), 3, "model.json, a 503, the retry");
    // Nobody listening: an error naming the URL.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = storage::open(&format!("http://{closed}/m/model.json")).unwrap_err();
    assert!(e.to_string().contains(&closed.to_string()), "{e}");
}

#[test]
fn the_http_source_and_sink_traits_work_directly() {
    let root = tempfile::tempdir().unwrap();
    let srv = server(root.path());
    let a = open_fixture("mlp_adam");
    let sink = HttpSink::new(&srv.url("m"), HttpOptions::default()).unwrap();
    let opts = SaveOptions {
        style: Some(layercake::Style::Downloads),
        hashes: true,
        ..Default::default()
    };
    storage::write(Box::new(sink), &a.spec, &a, opts).unwrap();
    let mut src = HttpSource::new(&format!("{}/model.json", srv.url("m")), quick()).unwrap();
    let b = storage::read(&mut src).unwrap();
    assert_same_model(&a, &b, "mlp_adam");
    assert!(
        b.spec.fields["trainingConfig"] == a.spec.fields["trainingConfig"],
        "training config carried"
    );
    let report = layercake::verify::verify_location(
        &format!("{}/model.json", srv.url("m")),
        &Default::default(),
    )
    .unwrap();
    assert!(report.passed(), "{}", report.render());
}

/// Send `request` raw and return the status line and body.
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----layercake-test-boundary";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post(addr: std::net::SocketAddr, path: &str, parts: &[(&str, &str, &[u8])]) -> String {
    let (kind, body) = multipart(parts);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    raw(addr, &req)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn serve_saves_atomically_and_stays_inside_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let srv = server(&models);
    let addr = srv.addr();
    let a = open_fixture("cnn");
    storage::save(&srv.url("m"), &a.spec, &a, SaveOptions::default()).unwrap();
    let before = listing(&models.join("m"));
    let old_json = std::fs::read(models.join("m/model.json")).unwrap();
    let weights = std::fs::read(models.join("m/model.weights.bin")).unwrap();

    // An upload cut off mid-body: the old model stays, nothing is left behind.
    let (kind, body) = multipart(&[
        ("model.json", "model.json", &old_json),
        ("model.weights.bin", "model.weights.bin", &weights),
    ]);
    let mut req = format!(
        "POST /models/m HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body[..body.len() - 600]);
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&req).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.read_to_string(&mut out);
        // The refusal is sent after the staged directory is removed: it is the event to wait on.
        assert!(out.starts_with("HTTP/1.1 400"), "cut-off upload: {out:?}");
    }
    // A model whose manifest does not match its weights is refused.
    let r = post(
        addr,
        "/models/m",
        &[
            ("model.json", "model.json", &old_json),
            ("model.weights.bin", "model.weights.bin", &weights[..100]),
        ],
    );
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("not a valid model"),
        "{r}"
    );
    // No model.json part.
    let r = post(
        addr,
        "/models/m",
        &[("model.weights.bin", "model.weights.bin", &weights)],
    );
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("no 'model.json'"),
        "{r}"
    );
    // Every refusal above was answered after its staged directory was removed: no wait needed.
    assert_eq!(listing(&models.join("m")), before);
    assert_eq!(
        std::fs::read(models.join("m/model.json")).unwrap(),
        old_json
    );
    assert_eq!(
        listing(&models),
        vec!["m".to_string()],
        "no temporary directory left"
    );

    // Names and multipart filenames never reach outside DIR.
    let evil = [
        ("model.json", "../../../evil.json", &old_json[..]),
        ("model.weights.bin", "/tmp/evil.bin", &weights[..]),
    ];
    let r = post(addr, "/models/n", &evil);
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "filenames are ignored, parts are fixed files: {r}"
    );
    assert_eq!(
        listing(&models.join("n")),
        vec!["model.json", "model.weights.bin"]
    );
    std::fs::write(models.join("plain"), "a file").unwrap();
    let r = post(addr, "/models/plain", &evil);
    assert!(r.starts_with("HTTP/1.1 409"), "{r}");
    let r = post(addr, "/models/n", &[("../evil", "x", b"x")]);
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("unexpected part"),
        "{r}"
    );
    for path in [
        "/models/..",
        "/models/.hidden",
        "/models/a%2F..%2F..",
        "/models/%2e%2e",
    ] {
        let r = post(addr, path, &evil);
        assert!(
            r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 404"),
            "{path}: {r}"
        );
    }
    std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), models.join("m/link.bin")).unwrap();
    for path in [
        "/models/m/link.bin",
        "/models/m/..%2F..%2Fsecret.txt",
        "/models/m/../../secret.txt",
        "/models/..%2Fsecret.txt/x",
        "/models/m/.%2e/.%2e/secret.txt",
    ] {
        let r = raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            !r.contains("secret") || r.contains("refused") || r.contains("no file"),
            "{path}: {r}"
        );
        assert!(!r.starts_with("HTTP/1.1 200"), "{path}: {r}");
    }
    assert!(!root.path().join("evil.json").exists() && !Path::new("/tmp/evil.bin").exists());
    // Served files carry their content type and CORS.
    let r = raw(addr, b"GET /models/m/model.json HTTP/1.1\r\nHost: x\r\nOrigin: http://example.com\r\nConnection: close\r\n\r\n");
    let head = r.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200")
            && head.contains("content-type: application/json")
            && head.contains("access-control-allow-origin: *"),
        "{r}"
    );
}

#[test]
fn real_tfjs_loads_from_serve_and_saves_into_it() {
    let Some(tools) = tfjs_tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let srv = server(root.path());
    // TF.js saves with tf.io.http; layercake loads what arrived.
    for name in ["rnn", "sharded", "mlp_adam"] {
        let url = srv.url(name);
        node(
            &tools,
            "http-save.mjs",
            &[fixtures_dir().join(name).as_os_str(), url.as_ref()],
        );
        let saved = layercake::open(&root.path().join(name)).unwrap();
        let fixture = open_fixture(name);
        // tf.io.http sends the model's weights (TF.js leaves optimizer state out by default).
        for (i, w) in fixture.spec.weights.iter().enumerate() {
            if w.is_optimizer() {
                continue;
            }
            let j = saved
                .find(&w.name)
                .unwrap_or_else(|| panic!("{name}: {} missing", w.name));
            assert!(saved.logical(j) == fixture.logical(i), "{name}: {}", w.name);
        }
    }
    // TF.js loads from layercake serve, over its own HTTP handler, and predicts as it did.
    let fixtures_srv = server(&fixtures_dir());
    let pairs: Vec<_> = ["cnn", "sharded", "quant_uint8"]
        .iter()
        .map(|n| {
            (
                std::path::PathBuf::from(format!("{}/model.json", fixtures_srv.url(n))),
                fixtures_dir().join(n).join("expected.json"),
            )
        })
        .collect();
    tfjs_check(&tools, &pairs);
}

#[test]
fn cli_serves_converts_inspects_and_verifies_over_http() {
    let bin = env!("CARGO_BIN_EXE_layercake");
    let root = tempfile::tempdir().unwrap();
    /// Kills the server however the test ends.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut serve = Child(
        std::process::Command::new(bin)
            .args([
                "serve",
                root.path().to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(serve.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // Keep draining the server's log.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let url = format!("http://{addr}/models/conv");
    let fixture = fixtures_dir().join("conv1d_3d");
    let out = run(&[
        "convert",
        fixture.to_str().unwrap(),
        &url,
        "--device",
        "cpu",
        "--with-hashes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = format!("{url}/model.json");
    let out = run(&["inspect", &json]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Conv3D"));
    let expected = fixture.join("expected.json");
    let out = run(&[
        "verify",
        &json,
        "--device",
        "cpu",
        "--expect",
        expected.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    if gpu().is_some() {
        // From the server through the GPU (streamed) back to a local directory.
        let back = root.path().join("back");
        let out = run(&["convert", &json, back.to_str().unwrap(), "--device", "gpu"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && log.contains("streamed into"),
            "{log}"
        );
        let a = layercake::open(&fixture).unwrap();
        assert_same_model(&a, &layercake::open(&back).unwrap(), "url → gpu → dir");
    }
    let missing = run(&["verify", &format!("http://{addr}/models/none/model.json")]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    drop(serve);
}

/// A source that can only stream (its whole-file read panics): proves the GPU upload never asks
/// for a weight file in one piece.
struct StreamOnly(std::path::PathBuf, std::path::PathBuf);

impl storage::ModelSource for StreamOnly {
    fn origin(&self) -> &Path {
        &self.1
    }
    fn model_json(&mut self, _limit: u64) -> layercake::Result<Vec<u8>> {
        Ok(std::fs::read(&self.1).unwrap())
    }
    fn weight_file(
        &mut self,
        entry: &str,
        _limit: u64,
    ) -> layercake::Result<layercake::format::store::Backing> {
        panic!("{entry} was asked for whole");
    }
    fn weight_reader(&mut self, entry: &str, _limit: u64) -> layercake::Result<Box<dyn Read + '_>> {
        // Small reads, so that weights straddle chunks as well as files.
        let f = std::fs::File::open(self.0.join(entry)).unwrap();
        Ok(Box::new(BufReader::with_capacity(1000, f).take(u64::MAX)))
    }
}

#[test]
fn weight_files_stream_straight_into_gpu_buffers() {
    let Some(dev) = gpu() else { return };
    let srv = server(&fixtures_dir());
    let small = layercake::gpu::residency::UploadOptions {
        small_tensor_bytes: 256,
        arena_bytes: 4096,
        max_chunk_bytes: Some(1024),
        ..Default::default()
    };
    for name in ["sharded", "quant_uint8", "quant_float16", "mlp_adam", "rnn"] {
        let want = open_fixture(name);
        let dir = fixtures_dir().join(name);
        let mut sources: Vec<Box<dyn storage::ModelSource>> = vec![
            Box::new(StreamOnly(dir.clone(), dir.join("model.json"))),
            Box::new(HttpSource::new(&format!("{}/model.json", srv.url(name)), quick()).unwrap()),
        ];
        for (k, src) in sources.iter_mut().enumerate() {
            for opts in [&Default::default(), &small] {
                let mut last = (0, 0);
                let (spec, gw) = dev
                    .upload_from(src.as_mut(), opts, &mut |d, t| last = (d, t))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(last, (want.spec.stored_bytes(), want.spec.stored_bytes()));
                assert_eq!(spec.layout.groups, want.spec.layout.groups);
                let reader = gw.reader(1 << 20).unwrap();
                for i in 0..want.spec.weights.len() {
                    use layercake::format::WeightBytes;
                    let got = reader.logical(i).unwrap();
                    assert!(got == want.logical(i), "{name} source {k}: weight {i}");
                }
                if k == 1 {
                    break; // the HTTP source is consumed by its first upload
                }
            }
        }
    }
    // A server that over-sends is stopped by the streaming reader too.
    let (url, _) = scripted("cnn", Fault::OverSend);
    let mut src = HttpSource::new(&url, quick()).unwrap();
    let e = dev
        .upload_from(&mut src, &Default::default(), &mut |_, _| {})
        .err()
        .expect("over-sending must fail");
    assert!(e.to_string().contains("sent more than"), "{e}");
}
