//! Errors of the engine's operations.

use socketioxide_core::adapter::errors::AdapterError;

use crate::TransportError;

/// Why a cluster operation (fetchSockets, allRooms, serverSideEmit, broadcast with acks, joins…)
/// failed. Local effects have already happened when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not send the request.
    #[error("the transport could not send the request: {}", report(.0))]
    Transport(TransportError),
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
    #[error("the namespace's adapter is closed")]
    Closed,
    /// The namespace's adapter has not finished initialising (it is not attached to the
    /// transport yet).
    #[error("the namespace's adapter is not initialised yet")]
    NotInitialised,
    /// No namespace of that name exists on this server (serverSideEmit on a namespace that was
    /// never created, or was closed).
    #[error("no namespace {0} on this server")]
    UnknownNamespace(String),
    /// A packet could not be converted to or from the wire.
    #[error("a packet could not be converted to or from the wire: {}", report(.0))]
    Wire(switchboard_wire::DecodeError),
    /// Arguments could not be converted to or from wire values.
    #[error("arguments could not be converted to or from wire values: {0}")]
    Convert(switchboard_wire::convert::ConvertError),
    /// A value over its size limit (socket data over `max_data_bytes`).
    #[error("{what} is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// What was refused.
        what: &'static str,
        /// Its size, encoded.
        size: usize,
        /// The limit.
        max: usize,
    },
}

// The engine's errors reach users inside socketioxide's errors, which print only the message: so
// each variant's message carries its whole cause, and `source()` stays empty (never both).
impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

impl From<switchboard_wire::DecodeError> for Error {
    fn from(e: switchboard_wire::DecodeError) -> Self {
        Error::Wire(e)
    }
}

impl From<switchboard_wire::convert::ConvertError> for Error {
    fn from(e: switchboard_wire::convert::ConvertError) -> Self {
        Error::Convert(e)
    }
}

/// `error` and its causes, as one line: `outer: cause: root cause`. Error types of this
/// workspace do not repeat their cause in their message (it is their `source()`), so logs print
/// errors through this.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
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
    /// [`ServerSideNamespace::fetch_sockets`](crate::ServerSideNamespace::fetch_sockets): the
    /// sockets found so far.
    ClusterSockets(Vec<crate::ClusterSocket>),
}

impl From<Error> for AdapterError {
    fn from(e: Error) -> Self {
        AdapterError(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportErrorKind;

    #[test]
    fn messages_name_the_cause_once() {
        let cause =
            switchboard_wire::json::from_slice(b"{oops", &switchboard_wire::Limits::DEFAULT)
                .err()
                .map(Error::from);
        let Some(error) = cause else {
            panic!("bad JSON decodes")
        };
        let text = report(&error);
        assert!(
            text.starts_with("a packet could not be converted to or from the wire: invalid JSON: "),
            "{text}"
        );
        assert_eq!(text.matches("invalid JSON").count(), 1, "{text}");
        // the whole story is in the message: socketioxide shows users only that
        assert_eq!(error.to_string(), text);
        assert!(std::error::Error::source(&error).is_none());

        let transport = Error::from(TransportError::new(
            TransportErrorKind::Disconnected,
            "redis is down",
        ));
        assert_eq!(
            report(&transport),
            "the transport could not send the request: disconnected: redis is down"
        );
    }
}
