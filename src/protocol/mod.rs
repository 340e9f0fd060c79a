//! The wire protocol: MessagePack maps over WebSocket binary frames (or the
//! same maps as JSON over text frames, for browsers).
pub mod codec;
mod flat;
pub mod messages;

pub use codec::{decode_request, encode_frame, pack_event, Encoding};
pub use messages::*;
