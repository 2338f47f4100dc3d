//! libFuzzer's entry for the `http` check (see `xmpp_lambda_fuzz::http`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xmpp_lambda_fuzz::http::check(data));
