//! Fixed-size cells: the only thing an observer of a stream or a mailbox sees.
//!
//! A *frame* is one ratchet message — an encrypted header followed by an encrypted
//! body — and is always a whole number of [`CELL_SIZE`]-byte cells. The body's
//! plaintext is a 4-byte length, the payload, and zero padding up to the frame's
//! capacity, so the padding is inside the encryption and the length is never visible:
//! an observer learns only how many cells a frame has.
//!
//! ```text
//! frame  = encrypted header (HEADER_LEN) || body ciphertext (n·CELL_SIZE − HEADER_LEN)
//! body   = AEAD( u32 payload length || payload || zeros )
//! ```
//!
//! A reader learns a frame's length by decrypting the header of its first cell (the
//! header carries the body length), then waits for the remaining cells.
//!
//! Why 498 bytes: it is exactly the data payload of one Tor RELAY_DATA cell, so a
//! one-cell frame travels in one Tor cell with no partial cell to leak its size, and
//! a short chat message (up to [`payload_capacity`]`(1)` = 394 bytes) costs a single cell.
//! Larger frames (files) amortise the 104 bytes of header and tag over many cells.

use zeroize::Zeroizing;

use crate::ratchet;

/// The size of every cell.
pub const CELL_SIZE: usize = 498;
/// Bytes of encrypted header at the start of each frame.
pub const HEADER_LEN: usize = ratchet::HEADER_LEN;
/// The body's authentication tag.
pub const TAG_LEN: usize = ratchet::TAG_LEN;
/// Header and tag: what a frame spends on top of its padded payload.
pub const FRAME_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The payload length prefix inside the body.
const LEN_PREFIX: usize = 4;
/// The largest frame, in cells. It bounds what a reader buffers for one frame
/// (~124 KiB) and holds the largest text message with room to spare.
pub const MAX_FRAME_CELLS: usize = 256;

const _: () = assert!(FRAME_OVERHEAD + LEN_PREFIX < CELL_SIZE);

/// Errors from framing.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    /// The payload does not fit in [`MAX_FRAME_CELLS`] cells.
    #[error("payload too large for one frame")]
    TooLarge,
    /// A frame's declared length is not a whole number of cells, or too long.
    #[error("frame length is invalid")]
    BadLength,
    /// The padded body is malformed (bad length prefix or non-zero padding).
    #[error("frame padding is invalid")]
    BadPadding,
    /// The header of the next frame could not be decrypted.
    #[error("frame header could not be read")]
    UnreadableHeader,
}

/// How many payload bytes a frame of `cells` cells carries.
pub const fn payload_capacity(cells: usize) -> usize {
    cells * CELL_SIZE - FRAME_OVERHEAD - LEN_PREFIX
}

/// `len` rounded up to whole cells: handshake messages, which have fixed lengths
/// and need no encryption of their size, are zero-padded to this on streams.
pub const fn padded_len(len: usize) -> usize {
    len.div_ceil(CELL_SIZE) * CELL_SIZE
}

/// How many cells a payload of `len` bytes needs.
pub fn cells_for(len: usize) -> Result<usize, CellError> {
    let cells = (len + FRAME_OVERHEAD + LEN_PREFIX).div_ceil(CELL_SIZE);
    if cells > MAX_FRAME_CELLS {
        return Err(CellError::TooLarge);
    }
    Ok(cells)
}

/// Pads a payload into a body plaintext whose encryption fills whole cells.
pub fn pad(payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, CellError> {
    pad_to(payload, cells_for(payload.len())?)
}

/// Pads a payload to fill exactly `cells` cells (for fixed-size mailbox blobs).
pub fn pad_to(payload: &[u8], cells: usize) -> Result<Zeroizing<Vec<u8>>, CellError> {
    if cells == 0 || cells > MAX_FRAME_CELLS || payload.len() > payload_capacity(cells) {
        return Err(CellError::TooLarge);
    }
    let len = u32::try_from(payload.len()).map_err(|_| CellError::TooLarge)?;
    let mut body = Zeroizing::new(Vec::with_capacity(cells * CELL_SIZE - FRAME_OVERHEAD));
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(payload);
    body.resize(cells * CELL_SIZE - FRAME_OVERHEAD, 0);
    Ok(body)
}

/// Removes the padding from a decrypted body. Non-zero padding is rejected so the
/// padding can never carry anything.
pub fn unpad(body: &[u8]) -> Result<&[u8], CellError> {
    let (prefix, rest) = body
        .split_at_checked(LEN_PREFIX)
        .ok_or(CellError::BadPadding)?;
    let mut len_bytes = [0u8; LEN_PREFIX];
    len_bytes.copy_from_slice(prefix);
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CellError::BadPadding)?;
    let (payload, padding) = rest.split_at_checked(len).ok_or(CellError::BadPadding)?;
    if padding.iter().any(|b| *b != 0) {
        return Err(CellError::BadPadding);
    }
    Ok(payload)
}

/// The total frame length for a header announcing `body_len`, if that is valid.
pub fn frame_len(body_len: usize) -> Result<usize, CellError> {
    let total = HEADER_LEN
        .checked_add(body_len)
        .ok_or(CellError::BadLength)?;
    if total % CELL_SIZE != 0 || total / CELL_SIZE > MAX_FRAME_CELLS || total == 0 {
        return Err(CellError::BadLength);
    }
    Ok(total)
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Length of the frame at the front of `buf`, once its header was read.
    current: Option<usize>,
}

impl FrameReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete frame, if one has arrived. `body_len` is asked once
    /// per frame, with the frame's [`HEADER_LEN`] header bytes, for the body length
    /// the header announces (`None` if the header cannot be decrypted).
    pub fn next_frame(
        &mut self,
        body_len: impl FnOnce(&[u8]) -> Option<usize>,
    ) -> Result<Option<Vec<u8>>, CellError> {
        let total = match self.current {
            Some(total) => total,
            None => {
                let Some(header) = self.buf.get(..HEADER_LEN) else {
                    return Ok(None);
                };
                let total = frame_len(body_len(header).ok_or(CellError::UnreadableHeader)?)?;
                self.current = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let frame = std::mem::replace(&mut self.buf, rest);
        self.current = None;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stand-in for encryption: the "header" states the body length in clear and
    /// the "tag" is zeros, which is all framing needs.
    fn fake_frame(payload: &[u8]) -> Vec<u8> {
        let body = pad(payload).unwrap();
        let mut frame = vec![0u8; HEADER_LEN];
        let body_len = body.len() + TAG_LEN;
        frame[..4].copy_from_slice(&u32::try_from(body_len).unwrap().to_be_bytes());
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&[0u8; TAG_LEN]);
        frame
    }

    fn fake_body_len(header: &[u8]) -> Option<usize> {
        Some(u32::from_be_bytes(header[..4].try_into().unwrap()) as usize)
    }

    fn fake_open(frame: &[u8]) -> Vec<u8> {
        let body = &frame[HEADER_LEN..frame.len() - TAG_LEN];
        unpad(body).unwrap().to_vec()
    }

    #[test]
    fn every_length_up_to_four_cells_round_trips_in_whole_cells() {
        for len in 0..=4 * CELL_SIZE {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let frame = fake_frame(&payload);
            assert_eq!(frame.len() % CELL_SIZE, 0, "length {len}");
            assert_eq!(frame.len() / CELL_SIZE, cells_for(len).unwrap());
            let mut reader = FrameReader::new();
            reader.push(&frame);
            let got = reader.next_frame(fake_body_len).unwrap().unwrap();
            assert_eq!(fake_open(&got), payload, "length {len}");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn capacity_boundaries() {
        assert_eq!(payload_capacity(1), 394);
        assert_eq!(cells_for(0).unwrap(), 1);
        assert_eq!(cells_for(394).unwrap(), 1);
        assert_eq!(cells_for(395).unwrap(), 2);
        assert_eq!(
            cells_for(payload_capacity(MAX_FRAME_CELLS)).unwrap(),
            MAX_FRAME_CELLS
        );
        assert_eq!(
            cells_for(payload_capacity(MAX_FRAME_CELLS) + 1),
            Err(CellError::TooLarge)
        );
        assert!(crate::message::MAX_TEXT_LEN + 64 < payload_capacity(MAX_FRAME_CELLS));
    }

    #[test]
    fn padding_must_be_zero_and_length_must_fit() {
        let mut body = pad(b"hello").unwrap().to_vec();
        assert_eq!(unpad(&body).unwrap(), b"hello");
        let last = body.len() - 1;
        body[last] = 1;
        assert_eq!(unpad(&body), Err(CellError::BadPadding));
        let mut body = pad(b"hello").unwrap().to_vec();
        body[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(unpad(&body), Err(CellError::BadPadding));
        assert_eq!(unpad(&[0, 0]), Err(CellError::BadPadding));
    }

    #[test]
    fn fixed_size_padding() {
        let body = pad_to(b"x", 4).unwrap();
        assert_eq!(body.len() + FRAME_OVERHEAD, 4 * CELL_SIZE);
        assert_eq!(pad_to(&[0; 400], 1), Err(CellError::TooLarge));
        assert_eq!(pad_to(b"", 0), Err(CellError::TooLarge));
    }

    #[test]
    fn bad_announced_lengths_are_refused() {
        for body_len in [0, 1, CELL_SIZE, MAX_FRAME_CELLS * CELL_SIZE, usize::MAX] {
            let mut reader = FrameReader::new();
            reader.push(&[0u8; CELL_SIZE]);
            assert_eq!(
                reader.next_frame(|_| Some(body_len)),
                Err(CellError::BadLength),
                "{body_len}"
            );
        }
        let mut reader = FrameReader::new();
        reader.push(&[0u8; CELL_SIZE]);
        assert_eq!(
            reader.next_frame(|_| None),
            Err(CellError::UnreadableHeader)
        );
    }

    proptest! {
        #[test]
        fn frames_reassemble_from_any_split(
            lens in proptest::collection::vec(0usize..1500, 1..6),
            cuts in proptest::collection::vec(1usize..700, 1..40),
        ) {
            let payloads: Vec<Vec<u8>> =
                lens.iter().map(|&n| (0..n).map(|i| (i % 251) as u8).collect()).collect();
            let stream: Vec<u8> = payloads.iter().flat_map(|p| fake_frame(p)).collect();
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            let mut offset = 0;
            let mut cut = cuts.iter().cycle();
            while offset < stream.len() {
                let end = (offset + cut.next().unwrap()).min(stream.len());
                reader.push(&stream[offset..end]);
                offset = end;
                while let Some(frame) = reader.next_frame(fake_body_len).unwrap() {
                    prop_assert_eq!(frame.len() % CELL_SIZE, 0);
                    got.push(fake_open(&frame));
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
