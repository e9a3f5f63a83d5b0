//! Contact address parsing: arbitrary text never panics, and whatever parses
//! re-encodes to an address that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::address::ContactAddress;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = text.parse::<ContactAddress>() {
        let again: ContactAddress = address.to_bech32().parse().expect("canonical form parses");
        assert_eq!(again.request_onion, address.request_onion);
        assert_eq!(again.identity, address.identity);
        assert_eq!(again.mailbox, address.mailbox);
    }
});
