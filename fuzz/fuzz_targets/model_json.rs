//! cargo fuzz run model_json — see `layercake::fuzzing::model_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = layercake::fuzzing::model_json(data);
});
