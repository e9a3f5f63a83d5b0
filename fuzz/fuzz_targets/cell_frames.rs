//! Frame reassembly and unpadding on arbitrary streams: no panic, every frame
//! returned is a whole number of cells, and unpadding accepts only bodies whose
//! padding is all zero.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::cell::{self, CELL_SIZE, FrameReader, HEADER_LEN, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new();
    for piece in stream.chunks(chunk) {
        reader.push(piece);
        loop {
            // The header stands in for a decrypted one. Byte 0 chooses: a cell
            // count (so that most frames are well formed and the fuzzer gets past
            // length checks), or a raw 32-bit body length from bytes 1..5.
            let next = reader.next_frame(|header| {
                let (&kind, rest) = header.split_first()?;
                if kind & 0x80 == 0 {
                    let cells = usize::from(kind) + 1;
                    return (cells * CELL_SIZE).checked_sub(HEADER_LEN);
                }
                let len: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                usize::try_from(u32::from_be_bytes(len)).ok()
            });
            match next {
                Ok(Some(frame)) => {
                    assert_eq!(frame.len() % CELL_SIZE, 0);
                    let body = &frame[HEADER_LEN..frame.len() - TAG_LEN];
                    if let Ok(payload) = cell::unpad(body) {
                        assert!(body[4 + payload.len()..].iter().all(|b| *b == 0));
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
});
