//! What writing needs below the handles: the state's helpers that send
//! bytes to the server in the background, stream a new file's upload,
//! stage content locally where the protocol has no random writes, and
//! move bytes between those places.

pub mod behind;
pub mod staging;
pub mod transfer;
pub mod upload_stream;
