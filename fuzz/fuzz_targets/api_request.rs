//! libFuzzer's entry for the `api` check (see `xmpp_lambda_fuzz::api`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xmpp_lambda_fuzz::api::check(data));
