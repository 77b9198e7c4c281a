//! cargo fuzz run keras — see `layercake::fuzzing::keras`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = layercake::fuzzing::keras(data);
});
