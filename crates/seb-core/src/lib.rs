pub mod digest;
pub mod envelope;
pub mod json;
pub mod keys;
