//! libFuzzer's entry for the `stream` check (see `xmpp_lambda_fuzz::stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xmpp_lambda_fuzz::stream::check(data));
