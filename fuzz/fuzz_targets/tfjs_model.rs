//! cargo fuzz run tfjs_model — see `layercake::fuzzing::tfjs_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = layercake::fuzzing::tfjs_model(data);
});
