//! Errors of the engine's operations.

use socketioxide_core::adapter::errors::AdapterError;

use crate::TransportError;

/// Why a cluster operation (fetchSockets, allRooms, serverSideEmit, broadcast with acks, joins…)
/// failed. Local effects have already happened when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not send the request.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// Not every node answered in time.
    #[error("request timed out: {answered} of {expected} nodes answered")]
    Timeout {
        /// Nodes that answered.
        answered: usize,
        /// Nodes that were expected to.
        expected: usize,
        /// What did arrive, local results included.
        partial: Partial,
    },
    /// Too many requests are already waiting for answers.
    #[error("too many pending requests ({0})")]
    TooManyRequests(usize),
    /// The namespace's adapter is closed.
    #[error("adapter closed")]
    Closed,
    /// A packet could not be converted to or from the wire.
    #[error("wire: {0}")]
    Wire(#[from] switchboard_wire::DecodeError),
    /// Arguments could not be converted to or from wire values.
    #[error("{0}")]
    Convert(#[from] switchboard_wire::convert::ConvertError),
}

/// The results that arrived before a request timed out.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Partial {
    /// Nothing to report.
    #[default]
    Nothing,
    /// fetchSockets: the sockets found so far.
    Sockets(Vec<socketioxide_core::adapter::RemoteSocketData>),
    /// allRooms: the rooms found so far.
    Rooms(Vec<String>),
    /// serverSideEmit with acks: the answers so far.
    Replies(Vec<switchboard_wire::Value>),
}

impl From<Error> for AdapterError {
    fn from(e: Error) -> Self {
        AdapterError(Box::new(e))
    }
}
