//! The webhook signature check: only the right HMAC passes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8], &str)| {
    let (secret, body, signature) = input;
    let _ = moor::http::verify_signature(secret, body, Some(signature));
    if !secret.is_empty() {
        let good = moor::http::sign(secret, body);
        assert!(moor::http::verify_signature(secret, body, Some(&good)).is_ok());
        if signature != good && !signature.eq_ignore_ascii_case(&good) {
            assert!(moor::http::verify_signature(secret, body, Some(signature)).is_err(), "{signature} passed");
        }
    }
});
