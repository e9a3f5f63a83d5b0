pub mod complete;
pub mod input;
pub mod qr;
