//! cargo fuzz run safetensors — see `layercake::fuzzing::safetensors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = layercake::fuzzing::safetensors(data);
});
