//! What reading needs below the handles: the read-ahead of a handle that
//! reads sequentially.

pub mod ahead;
