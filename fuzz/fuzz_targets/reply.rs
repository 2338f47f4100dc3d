//! libFuzzer's entry for the `reply` check (see `xmpp_lambda_fuzz::reply`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xmpp_lambda_fuzz::reply::check(data));
