#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rasdrill::fuzzing::golden_file(data));
