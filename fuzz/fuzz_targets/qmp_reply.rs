#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rasdrill::fuzzing::qmp_reply(data));
