#![no_main]
//! The body of a `POST /models/<name>` to `layercake serve`: multipart parsing, part checks,
//! staged write, model validation (`layercake::fuzzing::serve_upload`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = layercake::fuzzing::serve_upload(data);
});
