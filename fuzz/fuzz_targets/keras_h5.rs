//! cargo fuzz run keras_h5 — see `layercake::fuzzing::keras_h5`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = layercake::fuzzing::keras_h5(data);
});
