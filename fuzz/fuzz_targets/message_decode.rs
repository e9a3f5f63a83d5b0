//! Application message decoding: never panics, and decoding is the exact inverse of
//! encoding (anything accepted re-encodes to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::message::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        assert_eq!(message.encode().expect("decoded messages re-encode"), data);
    }
});
