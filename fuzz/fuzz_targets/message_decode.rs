//! Application message decoding: never panics, and decoding is the exact inverse of
//! encoding (anything accepted re-encodes to the same bytes), except that a decline
//! or cancel reason this version does not know is read as the general one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::message::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let again = message.encode().expect("decoded messages re-encode");
        if again != data {
            assert!(
                matches!(
                    message,
                    Message::FileDecline { .. } | Message::FileCancel { .. }
                ),
                "{message:?} re-encodes differently"
            );
            // Only the reason byte, the last one, may differ.
            assert_eq!(again.len(), data.len());
            assert_eq!(again[..again.len() - 1], data[..data.len() - 1]);
        }
        assert_eq!(Message::decode(&again).expect("re-encoding decodes"), message);
    }
});
