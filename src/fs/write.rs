//! What writing needs below the handles: the state's helpers that send
//! bytes to the server in the background and stream a new file's upload.

pub mod behind;
pub mod upload_stream;
